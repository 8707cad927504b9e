"""Transformers end to end: a 2-trial search on a tiny ViT and on the text model, and
``sparsity-search inspect``."""
from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
import yaml

from search.cli.inspect_command import format_report
from tests.conftest import cli_command, cli_env


def vit_config(tmp_path) -> dict:
    return {
        "study": "vit", "output_dir": str(tmp_path / "runs"), "threads": 1,
        "data": {"name": "synthetic", "options": {"samples": 160, "classes": 4}},
        "model": {"name": "vit", "options": {"hidden_dim": 16, "mlp_dim": 32, "num_heads": 2,
                                             "num_layers": 1, "patch_size": 4}},
        "dense": {"epochs": 2, "lr": 0.005}, "finetune": {"epochs": 1, "lr": 0.002},
        "space": {"criteria": ["wanda"], "granularities": ["n:m"], "bits": [8],
                  "sparsity": {"high": 0.75}},     # n:m: 0.75 is 1:4, its sparsest
        "cost": {"measure_latency": False},
        "search": {"n_trials": 2, "baselines": []},
    }


def text_config(tmp_path) -> dict:
    return {
        "study": "text", "output_dir": str(tmp_path / "runs"), "threads": 1,
        "data": {"name": "pydoc_text", "batch_size": 32,
                 "options": {"context": 16, "max_train": 512, "max_eval": 96}},
        "model": {"name": "tiny_gpt", "options": {"dim": 16, "layers": 1, "heads": 4}},
        "dense": {"epochs": 3, "lr": 0.01}, "finetune": {"epochs": 1, "lr": 0.003},
        "space": {"criteria": ["l2"], "granularities": ["channel"], "bits": [32],
                  "sparsity": {"low": 0.5, "high": 0.75, "scale": "linear", "step": 0.25},
                  "groups": {"heads": "regex:attention\\.[qkv]_proj$"}},
        "cost": {"latency_repeats": 2},         # latency on: its random inputs become tokens
        "search": {"n_trials": 2, "baselines": []},
    }


@pytest.mark.slow
def test_two_trial_search_on_a_tiny_vit(tmp_path):
    from search.api import run_search

    result = run_search(vit_config(tmp_path), log=lambda _: None)
    trials = pd.read_csv(result.folder / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE", "COMPLETE"]
    attention = "encoder.layers.encoder_layer_0.self_attention"
    for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert f"sparsity.{attention}.{projection}" in trials.columns
    dense, pruned = trials.iloc[0], trials.iloc[1]
    assert dense["flops"] == dense["flops_dense"] and pruned["flops"] < dense["flops"]
    assert pruned["criterion"] == "wanda" and 0.0 <= pruned["accuracy"] <= 1.0


@pytest.mark.slow
def test_two_trial_search_on_the_text_model_removes_heads_at_export(tmp_path):
    from search.api import run_search

    result = run_search(text_config(tmp_path), log=lambda _: None)
    trials = pd.read_csv(result.folder / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE", "COMPLETE"]
    dense, pruned = trials.iloc[0], trials.iloc[1]
    # Next-character accuracy over 97 symbols: far above chance (1%) after three short epochs.
    assert dense["accuracy"] > 0.1
    # Heads removed physically: fewer FLOPs for the dense kernels too (the attention products
    # shrink with the heads), though never below what the MLP and head keep.
    assert pruned["flops_dense"] == pruned["flops"] < dense["flops"]
    exported = result.export(1)
    rows = {row["layer"]: row for row in exported.manifest["layers"]}
    q = rows["blocks.0.attention.q_proj"]
    assert q["shape_after"][0] < q["shape_before"][0] and q["shape_after"][0] % 4 == 0
    assert rows["blocks.0.attention.out_proj"]["shape_after"][1] == q["shape_after"][0]


def test_inspect_lists_every_weight_matrix_and_totals_next_to_flop_counter_mode(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(vit_config(tmp_path)))
    done = subprocess.run(cli_command("inspect", str(path), "--json"), env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    names = [layer["name"] for layer in report["layers"]]
    attention = "encoder.layers.encoder_layer_0.self_attention"
    assert names == (["conv_proj"] + [f"{attention}.{p}_proj" for p in ("q", "k", "v", "out")]
                     + ["encoder.layers.encoder_layer_0.mlp.0",
                        "encoder.layers.encoder_layer_0.mlp.3", "heads.head"])
    head = report["layers"][-1]
    assert not head["searched"] and "classifier" in head["why"]
    assert all(layer["searched"] for layer in report["layers"][:-1])
    assert {w["name"] for w in report["not_searched_weights"]} == {"class_token",
                                                                   "encoder.pos_embedding"}
    flops = report["flops"]
    # 8x8 inputs in 4x4 patches + a class token: 5 tokens of 16 channels, 2 heads.
    assert flops["weight_free"] == 2 * 2 * 5 * 5 * 16
    assert flops["dense_total"] == flops["flop_counter_mode"] == (
        flops["prunable"] + flops["weight_free"])
    assert flops["flop_counter_mode_as_shipped"] == flops["prunable"]
    assert report["params"]["prunable"] == sum(layer["params"] for layer in report["layers"])
    table = format_report(report)
    assert "heads.head" in table and "classifier (space.classifier: exclude)" in table
    assert "as torch ships it" in table and "not searched: class_token (1, 1, 16)" in table


def test_inspect_bad_input_shape_is_one_clear_error(tmp_path):
    done = subprocess.run(cli_command("inspect", "--input-shape", "3,x", "--num-classes", "4"),
                          env=cli_env(), capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: --input-shape must be sizes >= 1 separated by commas "
                                   "(e.g. 3,224,224), got '3,x'")


@pytest.mark.parametrize("classes", ["0", "-3"])
def test_inspect_bad_num_classes_is_one_clear_error(tmp_path, classes):
    """0 was replaced by the data set's classes without a word; -3 was torch's error."""
    done = subprocess.run(cli_command("inspect", "--input-shape", "1,8,8", "--num-classes",
                                      classes), env=cli_env(), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --num-classes must be an integer >= 1, got {classes}"
