"""report: files, a self-contained index.html, and the page checked in headless Chromium."""
from __future__ import annotations

import re

import numpy as np
import pytest
from pathlib import Path
from matplotlib.image import imread

from headless_browser import find_chromium, load_page
from search.decide.pick import PickSettings


@pytest.fixture(scope="module")
def report(finished_study, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    index = finished_study.report(picks=[PickSettings(knee=True)], trials=[3], folder=folder)
    return index


def test_report_writes_every_figure_and_links_only_local_files(report, finished_study):
    folder = report.parent
    knee = finished_study.pick(knee=True).trial
    expected = {"front_accuracy_flops.png", "front_accuracy_energy.png", "hypervolume.png",
                "compression.png", "importances.png", "layers_trial3.png",
                f"layers_trial{knee}.png", "index.html"}
    assert expected <= {p.name for p in folder.iterdir()}
    for png in folder.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = report.read_text()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', page)  # all inline/local
    assert len(page) > 1_000_000
    for name in re.findall(r'<img src="([^"]+)"', page):
        assert (folder / name).is_file(), name
    for section in ("status", "front", "picks", "hypervolume", "importances"):
        assert f'<section id="{section}">' in page
    assert f"Trial {knee}" in page and "Trial 3" in page and "knee" in page
    # accuracy intervals: the front table's column, the picks' rows, the sample count
    assert page.count("acc 95% CI") >= 3 and "<th>noise</th>" in page
    assert f"{finished_study.val_samples:,} (accuracy intervals: 95% Wilson score)" in page


@pytest.mark.slow
def test_index_loads_in_headless_chromium_without_errors(report):
    if find_chromium() is None:
        pytest.skip("chromium is not installed: `apt-get install -y chromium` (.ci/run does)")
    probe = ("({figures: document.querySelectorAll('.plotly-graph-div .main-svg').length > 0 ?"
             " document.querySelectorAll('.plotly-graph-div').length : 0,"
             " divs: document.querySelectorAll('.plotly-graph-div').length,"
             " images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),"
             " title: document.title})")
    page = load_page(report.as_uri(), expression=probe)
    assert page.errors == []
    assert page.evaluated["divs"] == 3 and page.evaluated["figures"] == 3
    assert page.evaluated["images"] and all(page.evaluated["images"])
    assert "study 'finished'" in page.evaluated["title"]
    shot = report.parent / "screenshot.png"
    shot.write_bytes(page.screenshot)
    pixels = imread(shot)
    assert pixels.shape[0] > 2000 and pixels.shape[1] == 1200      # the whole page
    assert np.std(pixels[..., :3]) > 0.05                           # not a blank page


def test_report_cli_says_when_no_model_meets_the_bounds(study_cli, tmp_path):
    code, out, _ = study_cli("report", "--to", str(tmp_path), "--max-flops", "1")
    assert code == 0 and out.splitlines()[0] == f"report: {tmp_path / 'index.html'}"
    assert out.splitlines()[1].startswith("no model picked: no completed trial meets --max-flops 1")
    code, _, err = study_cli("report", "--to", str(tmp_path / "r"), "--min-accuracy", "2")
    assert code == 2 and "min_accuracy must be in [0, 1], got 2.0" in err


def test_report_cli(study_cli, tmp_path):
    code, out, _ = study_cli("report", "--to", str(tmp_path), "--max-size-kb", "1000")
    assert code == 0
    assert out.strip() == f"report: {tmp_path / 'index.html'}"
    assert (tmp_path / "front_accuracy_flops.png").is_file()
    # written elsewhere (--to), its links to the study's tables still reach them
    page = (tmp_path / "index.html").read_text()
    links = re.findall(r'<a href="([^"#]+\.csv)"', page)
    assert sorted(Path(link).name for link in links) == ["pareto.csv", "trials.csv"]
    assert all((tmp_path / link).is_file() for link in links), links


@pytest.mark.parametrize("trial, rule", [("999", "one of the study's trial numbers 0..6"),
                                          ("-1", "one of the study's trial numbers")])
def test_report_of_a_trial_that_is_not_there_is_refused(study_cli, tmp_path, trial, rule):
    code, _, err = study_cli("report", "--trial", trial, "--to", str(tmp_path / "r"))
    assert code == 2 and f"--trial must be {rule}" in err and trial in err
    assert not (tmp_path / "r").exists()          # nothing written


@pytest.mark.parametrize("command, args", [("report", ()), ("export", ("0",))])
def test_a_target_that_is_not_a_folder_is_one_error_line_before_any_work(study_cli, tmp_path,
                                                                         command, args):
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    for target in (blocker, blocker / "sub"):
        code, out, err = study_cli(command, *args, "--to", str(target))
        assert code == 2, (out, err)
        assert err.strip().splitlines() == [
            f"error: --to: the {command} folder must be writable, cannot write '{target}' "
            f"('{blocker}' is not a folder)"]
        assert "retraining" not in out and "Traceback" not in err
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize("command, args", [("report", ()), ("export", ("0",))])
def test_a_folder_of_other_files_is_not_written_over(study_cli, tmp_path, command, args):
    """`--to ~/models` holding the user's own config.yaml / index.html was overwritten."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.yaml").write_text("mine")
    (theirs / "index.html").write_text("mine")
    code, out, err = study_cli(command, *args, "--to", str(theirs))
    assert code == 2 and err.strip().splitlines() == [
        f"error: --to: '{theirs}' holds other files and is not an earlier {command} (no "
        f"{'manifest.json' if command == 'export' else 'index.html'} of ours): writing there "
        f"could overwrite them; give a new or empty folder"]
    assert (theirs / "config.yaml").read_text() == "mine" == (theirs / "index.html").read_text()
    assert "retraining" not in out
    ours = tmp_path / "ours"          # an earlier one of ours is written again
    for _ in range(2):
        code, out, err = study_cli(command, *args, "--to", str(ours))
        assert code == 0, (out, err)


def test_an_f1_study_from_python_is_labelled_by_its_metric(tmp_path):
    """The page said val_acc / "validation accuracy" for an f1_macro study's figures, and told to
    run `sparsity-search export N`, which refuses a model that came from Python."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from search.api import run_search

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(160, 8, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    result = run_search(model=lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(),
                                                    nn.Linear(16, 3)),
                        train=TensorDataset(x, y), metric="f1_macro", study="f1",
                        output_dir=str(tmp_path), threads=1, log=lambda _: None,
                        dense={"epochs": 3}, finetune={"epochs": 1},
                        cost={"measure_latency": False}, search={"n_trials": 3})
    page = result.report(picks=[PickSettings(knee=True)]).read_text()
    assert "<th>dense reference</th><td>val_f1_macro" in page and "val_acc" not in page
    assert "validation f1_macro" in page and "test f1_macro (reported" in page
    assert "not exported yet: the model came from Python" in page
    assert "sparsity-search export" not in page
    assert "the highest f1_macro of the" in result.pick().reason   # not "the highest accuracy"
