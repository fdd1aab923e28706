"""``sgt-nlp experiment``: arms x seeds x datasets, trained, gated, evaluated and compared with paired
intervals.

One runner for every comparison the project publishes (the demo, the movies reproduction, the CPU/GPU
protocols and the ablation). One job per module:

- :mod:`.spec` -- :class:`DatasetSpec`, :class:`ExperimentSpec`, their validation, JSON/YAML spec files and
  the presets (``smoke``, ``demo``, ``cpu``, ``gpu``, ``ablation``);
- :mod:`.data` -- SST-2 as an ERASER folder, generated tasks, the tiny initial BERT, the fp16 model export;
- :mod:`.records` -- run ids, atomic JSON records, the spec-change check, compact per-example evaluations;
- :mod:`.runner` -- :class:`Experiment`: learning-rate choice, convergence gate, training, evaluation, resume;
- :mod:`.statistics` -- pure per-example metrics, normalisations, :func:`paired_bootstrap` and
  :func:`aggregate`;
- :mod:`.verdicts` -- the call rule (bootstrap and seed t interval), minimum detectable effects, the verdict
  from three measures; :mod:`.simulation` -- the rule's false-positive rate and power by simulation;
- :mod:`.cli` -- ``sgt-nlp experiment``'s options (a dataclass), ``make_parser()`` and ``main()``.

The tables and the plot are rendered by :mod:`sgt_nlp.report.experiment`.
"""

from .cli import ExperimentArguments, main, make_parser
from .data import (
    SHARED_DATA,
    export_half_precision_model,
    prepare_data,
    read_sst2_tsv,
    tiny_initial_model,
    word_vocabulary,
    write_sst2_as_eraser,
)
from .output import write_results
from .records import (
    RECORD_VERSION,
    compact_ordering,
    example_columns,
    read_json,
    run_id,
    spec_changes,
    write_json,
)
from .runner import Experiment
from .simulation import simulate_call_rates
from .spec import (
    ALL_METHODS,
    DEFAULT_ARMS,
    METHODS,
    PRESETS,
    REMOVALS,
    DatasetSpec,
    ExperimentSpec,
    SpecError,
    load_spec,
    spec_from_dict,
    spec_to_dict,
    validate_spec,
)
from .statistics import (
    AGREEMENT_METRICS,
    ALL_METRICS,
    FAITHFULNESS_METRICS,
    MIN_EMPTY_DROP,
    VERDICT_METRICS,
    aggregate,
    method_metrics,
    min_max_normalise,
    paired_bootstrap,
    per_example_metrics,
)
from .verdicts import (
    NEGLIGIBLE,
    method_verdict,
    minimum_detectable_effect,
    normalisation_verdict,
    seed_interval,
    verdict_words,
)

__all__ = [
    "AGREEMENT_METRICS",
    "ALL_METRICS",
    "DEFAULT_ARMS",
    "FAITHFULNESS_METRICS",
    "ALL_METHODS",
    "METHODS",
    "MIN_EMPTY_DROP",
    "NEGLIGIBLE",
    "PRESETS",
    "RECORD_VERSION",
    "REMOVALS",
    "SHARED_DATA",
    "VERDICT_METRICS",
    "DatasetSpec",
    "Experiment",
    "ExperimentArguments",
    "ExperimentSpec",
    "SpecError",
    "aggregate",
    "compact_ordering",
    "example_columns",
    "export_half_precision_model",
    "load_spec",
    "main",
    "make_parser",
    "method_metrics",
    "method_verdict",
    "min_max_normalise",
    "minimum_detectable_effect",
    "normalisation_verdict",
    "paired_bootstrap",
    "per_example_metrics",
    "prepare_data",
    "read_json",
    "read_sst2_tsv",
    "run_id",
    "seed_interval",
    "simulate_call_rates",
    "spec_changes",
    "spec_from_dict",
    "spec_to_dict",
    "tiny_initial_model",
    "validate_spec",
    "verdict_words",
    "word_vocabulary",
    "write_json",
    "write_results",
    "write_sst2_as_eraser",
]
