"""Specs that share records: a spec with fewer methods reads the runs of one with more (the ablation over the
cpu protocol's SST-2 runs), one with more completes them, and a process without the baseline may wait for
it."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np
import pytest

from sgt_nlp.experiments import (
    PRESETS,
    Experiment,
    SpecError,
    method_metrics,
    read_json,
    spec_changes,
    spec_to_dict,
    write_json,
)
from sgt_nlp.experiments import runner as runner_module
from sgt_nlp.experiments.records import missing_methods, ordering_names, select_orderings
from sgt_nlp.experiments.stages import evaluate_run, evaluation_calls

WIDE = ("gradient_l2", "gradient", "random")
NARROW = ("gradient", "random")


def smoke(methods=WIDE, **changes):
    return replace(PRESETS["smoke"], **{"seeds": (0,), "methods": methods, **changes})


def record_of(out, run="plain_seed0_lr0.001"):
    return read_json(out / "synthetic" / run / "eval.json.gz")


# ---- the pure helpers --------------------------------------------------------------------------------------


def test_ordering_names_give_random_one_ordering_per_draw():
    assert ordering_names(("gradient", "random"), 3) == ["gradient", "random", "random_draw1", "random_draw2"]
    assert ordering_names(("random",), 1) == ["random"]


def test_missing_methods_look_at_every_removal_and_every_draw():
    record = {
        "orderings": {
            "delete": {"gradient": {}, "random": {}, "random_draw1": {}},
            "random_token": {"gradient": {}, "random": {}},
        }
    }
    assert missing_methods(record, ("gradient", "random"), 2) == ("random",)  # draw 1 lacks a removal
    assert missing_methods(record, ("gradient", "random"), 1) == ()
    assert missing_methods(record, ("gradient_l2", "gradient"), 1) == ("gradient_l2",)


def test_selected_orderings_change_naopc_bounds_as_if_only_they_had_been_evaluated():
    """NAOPC's bounds come from the run's orderings: a record holding an extra ordering must be cut to the
    spec's orderings, or its NAOPC would not compare with runs evaluated with fewer methods."""

    def ordering(comp):  # one example, two AOPC bins, prediction 0 with p 0.9
        return {
            "predicted": [0],
            "p_full": [0.9],
            "p_empty": [0.1],
            "p_comp": [comp[0]],
            "p_suff": [0.9],
            "p_comp_aopc": [list(comp)],
            "p_suff_aopc": [[0.9, 0.9]],
            "tokens_to_flip": [1],
            "auprc_visible": [None],
            "token_f1_visible": [None],
        }

    record = {
        "examples": {"label": [0]},
        "orderings": {
            "delete": {
                "gradient": ordering((0.5, 0.5)),  # comp AOPC 0.4
                "random": ordering((0.8, 0.8)),  # 0.1
                "occlusion": ordering((0.1, 0.1)),  # 0.8: the top of the wide record's range
            }
        },
    }
    wide = method_metrics(record["orderings"]["delete"], [0])
    narrow = method_metrics(select_orderings(record, ("gradient", "random"), 1)["orderings"]["delete"], [0])
    assert wide["gradient"]["comprehensiveness_naopc"][0] == pytest.approx(0.3 / 0.7)
    assert narrow["gradient"]["comprehensiveness_naopc"][0] == pytest.approx(1.0)
    assert set(narrow) == {"gradient", "random"}


def test_methods_are_not_a_spec_change_but_evaluation_settings_are():
    cpu, ablation = spec_to_dict(PRESETS["cpu"]), spec_to_dict(PRESETS["ablation"])
    assert cpu["methods"] != ablation["methods"]
    assert spec_changes(cpu, ablation) == []  # the ablation may read and add to the cpu protocol's records
    assert spec_changes(cpu, {**ablation, "ig_steps": 10}) == ["ig_steps"]


def test_writers_of_one_record_at_the_same_moment_never_collide(tmp_path):
    """Processes started together with --arms write spec.json at once; each keeps its own temporary file."""
    path = tmp_path / "spec.json"
    errors = []

    def write_many(tag):
        try:
            for i in range(200):
                write_json(path, {"writer": tag, "i": i})
        except OSError as exc:  # a shared temporary name: renamed away by the other writer
            errors.append(exc)

    threads = [threading.Thread(target=write_many, args=(tag,)) for tag in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert read_json(path)["i"] == 199 and list(tmp_path.iterdir()) == [path]


# ---- the runner --------------------------------------------------------------------------------------------


def test_a_spec_with_fewer_methods_reads_the_wider_records_and_writes_its_own_table(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    Experiment(smoke(), out, work).run()
    wide_table = (out / "results.md").read_text()
    wide_records = {p: p.read_bytes() for p in out.glob("synthetic/*/eval.json.gz")}
    arms = {**PRESETS["smoke"].arms, "sgt_low": {"sgt_mask_fraction": 0.2}}
    narrow = Experiment(replace(smoke(NARROW), name="narrow", arms=arms), out, work)
    result = narrow.run()
    # only the new arm is trained and evaluated, with the narrow methods; the wide records are untouched
    assert narrow.trained_runs == narrow.evaluated_runs == ["synthetic/sgt_low_seed0_lr0.001"]
    assert set(record_of(out, "sgt_low_seed0_lr0.001")["orderings"]["delete"]) == {
        "gradient",
        "random",
        "random_draw1",
    }
    assert {p: p.read_bytes() for p in wide_records} == wide_records
    # its table is its own file; the wide table stays
    assert narrow.results_path == out / "results_narrow.md" and (out / "results_narrow.png").is_file()
    assert (out / "results.md").read_text() == wide_table
    # spec.json describes the folder's records: the first spec's name, the union of arms and methods, and
    # none of one invocation's own settings (so a later run with --eval_processes 2 leaves it unchanged)
    recorded = read_json(out / "spec.json")
    assert recorded["name"] == PRESETS["smoke"].name != "narrow"
    assert set(recorded["arms"]) == {*PRESETS["smoke"].arms, "sgt_low"} and recorded["methods"] == list(WIDE)
    assert not {"eval_processes", "comparisons", "bootstrap_resamples", "eval_batch_size"} & set(recorded)
    # every run of the narrow table is normalised over the narrow orderings only
    data = result["datasets"]["synthetic"]
    assert {r["method"] for c in data["comparisons"] for r in c["rows"]} == {"gradient", "random"}
    row = next(
        r
        for c in data["comparisons"]
        if (c["treatment"], c["control"]) == ("sgt", "plain")
        for r in c["rows"]
        if (r["method"], r["removal"], r["metric"]) == ("gradient", "delete", "comprehensiveness_naopc")
    )
    expected = {}
    for arm in ("sgt", "plain"):
        cut = select_orderings(record_of(out, f"{arm}_seed0_lr0.001"), NARROW, 2)
        metrics = method_metrics(cut["orderings"]["delete"], cut["examples"]["label"])
        expected[arm] = metrics["gradient"]["comprehensiveness_naopc"]
    assert row["difference"]["mean"] == pytest.approx(float(np.nanmean(expected["sgt"] - expected["plain"])))
    # the wide spec again: nothing to do, the same table
    before = json.loads((out / "results.json").read_text())
    again = Experiment(smoke(), out, work)
    again.run()
    assert again.trained_runs == again.evaluated_runs == [] and again.results_path == out / "results.md"
    assert json.loads((out / "results.json").read_text()) == before


def test_a_record_with_fewer_methods_is_completed_from_the_kept_model(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    Experiment(smoke(NARROW), out, work, arms=("plain",), keep_models=True).run()
    first = record_of(out)
    # the wide spec, which sees the narrow record first, leaves it out until its own process completes it
    reader = Experiment(smoke(), out, work, arms=("sgt",))
    data = reader.run()["datasets"]["synthetic"]
    assert reader.evaluated_runs == ["synthetic/sgt_seed0_lr0.001"] and record_of(out) == first
    assert data["missing"] == ["plain_seed0", "random_mask_seed0"]  # plain is not counted while incomplete
    wide = Experiment(smoke(), out, work, arms=("plain",))
    wide.run()
    assert wide.trained_runs == [] and wide.evaluated_runs == ["synthetic/plain_seed0_lr0.001"]
    completed = record_of(out)
    assert completed["methods_added"] == ["gradient_l2"] and completed["seconds"] > first["seconds"]
    for removal, orderings in first["orderings"].items():  # what was there is kept as it was
        assert {k: completed["orderings"][removal][k] for k in orderings} == orderings
        assert set(completed["orderings"][removal]) == {"gradient", "random", "random_draw1", "gradient_l2"}
    assert completed["examples"] == first["examples"]


def test_a_record_with_fewer_methods_and_no_model_is_trained_and_evaluated_anew(tmp_path):
    """Without the model the missing methods cannot come from the same training: the run starts over."""
    out, work = tmp_path / "out", tmp_path / "work"
    Experiment(smoke(NARROW), out, work, arms=("plain",)).run()
    assert not (work / "synthetic" / "plain_seed0_lr0.001").exists()
    wide = Experiment(smoke(), out, work, arms=("plain",))
    wide.run()
    assert wide.trained_runs == wide.evaluated_runs == ["synthetic/plain_seed0_lr0.001"]
    record = record_of(out)
    assert "methods_added" not in record
    assert set(record["orderings"]["delete"]) == {"gradient", "random", "random_draw1", "gradient_l2"}


def test_a_process_without_the_baseline_waits_for_it(tmp_path, monkeypatch):
    """``wait_seconds``: the sgt process looks again until the plain process (run here while it 'sleeps')
    has chosen the learning rate and trained the seed, then trains and evaluates its own arm."""
    out, work = tmp_path / "out", tmp_path / "work"
    sleeps = []

    def baseline_runs_meanwhile(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 1:
            Experiment(smoke(), out, work, arms=("plain",)).run()

    monkeypatch.setattr(runner_module.time, "sleep", baseline_runs_meanwhile)
    waiting = Experiment(smoke(), out, work, arms=("sgt",), wait_seconds=7)
    data = waiting.run()["datasets"]["synthetic"]
    assert sleeps == [7]
    assert waiting.trained_runs == waiting.evaluated_runs == ["synthetic/sgt_seed0_lr0.001"]
    assert data["missing"] == ["random_mask_seed0"]  # the arm neither process ran
    # without wait_seconds the same process leaves the seed for later and never sleeps
    sleeps.clear()
    Experiment(smoke(), tmp_path / "out2", tmp_path / "work2", arms=("sgt",)).run()
    assert sleeps == []


def test_a_later_seed_keeps_the_earlier_seeds_in_the_table_and_in_spec_json(tmp_path):
    """``--seeds 1`` beside seed 0's records: seed 1 is run, and the table still covers seed 0 (read only)."""
    out, work = tmp_path / "out", tmp_path / "work"
    Experiment(smoke(), out, work).run()
    later = Experiment(smoke(seeds=(1,)), out, work)
    data = later.run()["datasets"]["synthetic"]
    assert sorted(later.trained_runs) == [
        f"synthetic/{a}_seed1_lr0.001" for a in ("plain", "random_mask", "sgt")
    ]
    assert data["seeds_evaluated"] == [0, 1] and data["missing"] == []
    assert all(len(r["difference"]["per_seed"]) == 2 for c in data["comparisons"] for r in c["rows"])
    assert read_json(out / "spec.json")["seeds"] == [0, 1]


def test_a_process_running_one_dataset_keeps_the_others_in_the_table(tmp_path):
    """``--datasets b`` beside a's records: b is run, a is read (never trained again) and stays in the
    table, as other arms and seeds do; a process cut to a dataset once overwrote the table with it alone."""
    first = PRESETS["smoke"].datasets[0]
    spec = smoke(datasets=(first, replace(first, name="second")))
    out, work = tmp_path / "out", tmp_path / "work"
    Experiment(spec, out, work, datasets=("synthetic",)).run()
    assert not (out / "second").exists()
    with pytest.raises(SpecError, match=r"--datasets: \['third'\]"):
        Experiment(spec, out, work, datasets=("third",))
    later = Experiment(spec, out, work, datasets=("second",))
    result = later.run()
    assert sorted(later.trained_runs) == [
        f"second/{a}_seed0_lr0.001" for a in ("plain", "random_mask", "sgt")
    ]
    assert set(result["datasets"]) == {"synthetic", "second"}
    assert all(result["datasets"][name]["missing"] == [] for name in ("synthetic", "second"))
    table = (out / "results.md").read_text()
    assert "synthetic" in table and "second" in table


def test_a_spec_sharing_records_with_more_seeds_keeps_its_own_seeds_in_the_table(tmp_path):
    """The ablation (seeds 0-1) beside the cpu runs (seeds 0-2): given its own seeds, its table leaves the
    wider spec's seed 2 out, so that every comparison covers the same seeds; without them, every recorded seed
    is read."""
    out, work = tmp_path / "out", tmp_path / "work"
    Experiment(smoke(seeds=(0, 1)), out, work).run()
    narrow = smoke(methods=NARROW, seeds=(0,))
    own = Experiment(narrow, out, work, table_seeds=(0,)).run()["datasets"]["synthetic"]
    assert own["seeds_evaluated"] == [0] and own["missing"] == []
    assert all(len(r["difference"]["per_seed"]) == 1 for c in own["comparisons"] for r in c["rows"])
    every = Experiment(narrow, out, work).run()["datasets"]["synthetic"]
    assert every["seeds_evaluated"] == [0, 1]


def test_evaluation_calls_side_by_side_give_the_record_of_calls_in_turn(tmp_path):
    """eval_processes=2 runs a run's evaluation calls (each main method, gradient_l2, the extra random draw)
    in two spawned processes: the same examples and orderings as the runner's calls one after another."""
    out, work = tmp_path / "out", tmp_path / "work"
    spec = smoke()
    Experiment(spec, out, work, arms=("plain",), keep_models=True).run()
    run, data = work / "synthetic" / "plain_seed0_lr0.001", work / "synthetic" / "data"
    side_by_side = replace(spec, eval_processes=2)
    in_turn = evaluation_calls(spec, spec.datasets[0], run / "model", data, run, "x")
    assert [sorted(names) for names, _ in in_turn] == [["gradient", "random"], ["gradient"], ["random"]]
    # side by side, the main methods' call is split so that no worker holds most of the work
    calls = evaluation_calls(side_by_side, spec.datasets[0], run / "model", data, run, "x")
    assert [list(names.values()) for names, _ in calls] == [
        ["gradient"],  # the costliest first; equal costs in the order of the calls in turn
        ["gradient_l2"],
        ["random"],
        ["random_draw1"],
    ]
    raw = evaluate_run(side_by_side, spec.datasets[0], data, run / "model", tmp_path / "two", "plain")
    record = record_of(out)
    assert raw["examples"] == record["examples"] and raw["orderings"] == record["orderings"]
    assert raw["seconds"] > 0
