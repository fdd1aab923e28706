"""Fine-tune a sequence classifier with Saliency Guided Training; runs alone or under ``accelerate launch``.

    accelerate launch scripts/train_sgt.py --model_name_or_path PATH --data_dir DIR --output_dir OUT \
        --sgt_mask_fraction 0.5

Takes every ``TrainingArguments`` option plus the ``sgt_*`` options, the model options (``--max_length``) and
the data options (``--data_dir`` for ERASER folders, ``--train_file``/``--validation_file`` for CSV/JSON,
``--dataset_path`` for a saved DatasetDict); ``--help`` lists them all. The same as ``sgt-nlp train``.
"""

import sys

from sgt_nlp.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))  # the CLI's error handling: one line on stderr, --debug for more
