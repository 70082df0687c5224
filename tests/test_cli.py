"""The command line: listings, --version, and one-sentence errors with exit status 2 for every flag a user can get wrong."""

import argparse
import subprocess
import sys

import pytest
from conftest import REPO


def alvit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alvit.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "what, expected",
    [
        ("strategies", "entropy"),
        ("models", "vit_b16"),
        ("datasets", "imagefolder:<root>"),
        ("noise", "pairflip"),
    ],
)
def test_list_shows_each_name_with_a_description(what, expected):
    result = alvit("list", what)
    assert result.returncode == 0 and expected in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "configs/demo.yaml", "--set", "model=vit_giant_nope"], "model 'vit_giant_nope' is not known"),
        (["run", "configs/demo.yaml", "--set", "noise.rate=1.2"], "outside [0, 1)"),
        (["run", "configs/demo.yaml", "--set", "al.initial=2000"], "larger than the pool of 1347"),
        (["run", "configs/demo.yaml", "--set", "dataset=imagefolder:/missing"], "/missing/train does not exist"),
        (["run", "configs/missing.yaml"], "does not exist"),
        (["run", "configs/demo.yaml", "--set", "acq.calibrate=awre"], "'awre' is not known; valid choices are none, "),
        (["run", "configs/demo.yaml", "--set", "acq.calibrate=0.5"], "0.5 is not known; valid choices are none, noisy"),
        (
            ["run", "configs/demo.yaml", "--set", "acq.calibrate="],
            "is empty; valid choices are none, noisy, aware, true",
        ),
    ],
)
def test_user_errors_are_one_sentence_without_a_traceback(args, message, tmp_path):
    result = alvit(*args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("alvit: error: ")


def test_a_run_folder_under_a_file_is_one_sentence(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    result = alvit("run", "configs/demo.yaml", "--out", str(tmp_path / "notes.txt" / "run"))
    assert result.returncode == 2 and result.stderr == (
        f"alvit: error: --out {tmp_path / 'notes.txt' / 'run'} cannot be created: "
        f"{tmp_path / 'notes.txt'} is a file; choose another path\n"
    )


def test_run_prints_a_summary_line_per_round_and_the_folder(tmp_path):
    from conftest import TINY

    sets = [arg for item in TINY for arg in ("--set", item)]
    result = alvit("run", "configs/demo.yaml", "--quiet", "--out", str(tmp_path / "r"), *sets)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("round ") == 3 and "acc " in result.stderr and "ece " in result.stderr
    assert f"run folder: {tmp_path / 'r'}" in result.stdout


def test_a_wrong_value_is_refused_before_torch_is_imported():
    """Each of these sentences comes from the config alone: no model, no data, no torch."""
    code = (
        "import sys; from alvit.cli import main\n"
        "for setting in ['noise.rate=1.2', 'al.initial=2000', 'dataset=imagefolder:/missing']:\n"
        "    try: main(['run', 'configs/demo.yaml', '--set', setting])\n"
        "    except SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
    assert result.stderr.count("alvit: error:") == 3


def in_process(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``alvit ARGV`` in this process (no interpreter start per case); its exit status, stdout and stderr."""
    from alvit.cli import main

    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


DEMO = "configs/profiles/demo.yaml"
WHOLE_BAD = ["0", "-1", "1.5", "nan", "inf", "abc", "", "99999999999999999999"]
NUMBER_BAD = ["0", "-1", "-5", "-inf", "nan", "inf", "1e400", "1e30", "abc", ""]
BAD_VALUES = [  # (command, flag, values it must refuse): every numeric and list flag of every command
    (["sweep", DEMO], "--jobs", WHOLE_BAD),
    (["sweep", DEMO], "--per-gpu", WHOLE_BAD),
    (["sweep", DEMO], "--timeout", NUMBER_BAD),
    (["sweep", DEMO], "--stale-after", NUMBER_BAD),
    (["sweep", DEMO, "--estimate"], "--tflops", NUMBER_BAD),
    (["sweep", DEMO], "--gpus", ["-1", "abc", "0,0", "", "nan", "1.5", "99", "0,,1"]),
    (["sweep", DEMO], "--slurm-gpus-per-task", ["-1", "1.5", "nan", "abc", "", "65"]),
    (["sweep", DEMO], "--slurm-cpus-per-task", WHOLE_BAD),
    (["sweep", DEMO], "--slurm-mem-gb", NUMBER_BAD),
    (["sweep", DEMO], "--slurm-time-min", WHOLE_BAD),
    (["sweep", DEMO], "--slurm-array-parallelism", WHOLE_BAD),
    (["status", DEMO], "--stale-after", NUMBER_BAD),
    (["simulate", DEMO, "--out", "unused"], "--test-size", WHOLE_BAD),
    (["bench", "vit_nano_p4"], "--batch", [*WHOLE_BAD, "65537"]),
    (["bench", "vit_nano_p4"], "--eval-batch", WHOLE_BAD),
    (["bench", "vit_nano_p4"], "--seconds", NUMBER_BAD),
    (["bench", "vit_nano_p4"], "--naive-workers", ["-1", "1.5", "nan", "inf", "abc", "", "99999999999999999999"]),
    (["bench", "vit_nano_p4"], "--concurrent", ["0", "-1", "two", "", "1,0", "nan", "inf", "99999"]),
    (["bench", "vit_nano_p4"], "--device", ["tpu", "cuda:x", "cuda:-1", "", "gpu0", "cuda:99"]),
    (["sweep", DEMO], "--executor", ["cloud", ""]),
    (["bench", "vit_nano_p4"], "--compile", ["maybe"]),
    (["bench", "vit_nano_p4"], "--only", ["everything", "", "train,score"]),
    (["power", DEMO], "--seeds", ["1", "0", "31", "3,1", "three", "", "nan", "99999999999999999999"]),
    (["power", DEMO], "--effect", [*NUMBER_BAD, "101"]),
    (["power", DEMO], "--sd", [*NUMBER_BAD, "1.5"]),
    (["power", DEMO], "--tables", [*WHOLE_BAD, "19"]),
]
CASES = [
    pytest.param(command, flag, value, id=f"{command[0]} {flag} {value!r}")
    for command, flag, values in BAD_VALUES
    for value in values
]


@pytest.mark.parametrize("command, flag, value", CASES)
def test_every_flag_refuses_a_value_outside_its_range_in_one_sentence(capsys, command, flag, value):
    """0, negatives, NaN, infinities, huge and non-numeric values: exit 2 before anything runs."""
    code, _, err = in_process(capsys, *command, f"{flag}={value}")
    assert code == 2
    assert err.startswith(f"alvit: error: argument {flag}: ") and err.count("\n") == 1 and "Traceback" not in err


def typed_flags() -> dict[tuple[str, str], object]:
    """(command, flag) -> its argparse type, for every flag of every command that takes a typed value or a choice."""
    from alvit.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {
        (name, action.option_strings[0]): action.type
        for name, sub in commands.choices.items()
        for action in sub._actions
        if action.option_strings and (action.type is not None or action.choices)
    }


def test_no_flag_takes_a_bare_int_or_float():
    """A flag typed int or float accepts 0, -5, nan and inf; every numeric flag has a checked type instead."""
    assert not [flag for flag, kind in typed_flags().items() if kind in (int, float)]


def test_the_table_covers_every_typed_flag_of_every_command():
    assert set(typed_flags()) == {(command[0], flag) for command, flag, _ in BAD_VALUES}


def test_values_inside_their_range_are_parsed():
    from alvit.cli import build_parser

    args = build_parser().parse_args(
        [
            "sweep",
            DEMO,
            "--jobs",
            "2",
            "--timeout",
            "1.5",
            "--stale-after",
            "60",
            "--tflops",
            "350",
            "--slurm-gpus-per-task",
            "0",
            "--slurm-mem-gb",
            "32",
        ]
    )
    assert (args.jobs, args.timeout, args.stale_after, args.tflops, args.slurm_gpus_per_task, args.slurm_mem_gb) == (
        2,
        1.5,
        60,
        350,
        0,
        32,
    )
    bench = build_parser().parse_args(
        ["bench", "vit_nano_p4", "--batch", "8", "--seconds", "0.5", "--concurrent", "1,2,4"]
    )
    assert (bench.batch, bench.seconds, bench.concurrent) == (8, 0.5, (1, 2, 4))


def test_gpu_ids_are_checked_against_the_devices_present(monkeypatch):
    from alvit import flags

    monkeypatch.setattr(flags, "gpu_count", lambda: 2)
    assert flags.gpu_ids("0,1") == ("0", "1")
    with pytest.raises(argparse.ArgumentTypeError, match="GPU 2 is not on this machine, which has GPUs 0 to 1"):
        flags.gpu_ids("1,2")
    monkeypatch.setattr(flags, "gpu_count", lambda: 0)
    with pytest.raises(argparse.ArgumentTypeError, match="which has no CUDA GPU .*leave --gpus out to run on the CPU"):
        flags.gpu_ids("0")


def test_a_cuda_device_is_checked_against_the_devices_present(monkeypatch):
    from alvit import flags

    monkeypatch.setattr(flags, "gpu_count", lambda: 1)
    assert [flags.device(name) for name in ("auto", "cpu", "cuda", "cuda:0")] == ["auto", "cpu", "cuda", "cuda:0"]
    with pytest.raises(argparse.ArgumentTypeError, match="cuda:1 is not on this machine, which has cuda:0 to cuda:0"):
        flags.device("cuda:1")
    monkeypatch.setattr(flags, "gpu_count", lambda: 0)
    with pytest.raises(argparse.ArgumentTypeError, match="cuda asks for a CUDA GPU, and this machine has none"):
        flags.device("cuda")


def test_version_prints_the_package_version(capsys):
    from alvit import __version__

    assert in_process(capsys, "--version") == (0, f"alvit {__version__}\n", "")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["sweep", DEMO, "--only", "seed=99"],
            "--only seed=99 matches no configuration of profile configs/profiles/demo.yaml; "
            "its seed values are: 0, 1, 2",
        ),
        (["sweep", DEMO, "--only", "model=nosuch"], "its model values are: vit_nano_p4, vit_mini_p8"),
        (["status", DEMO, "--only", "seed=99"], "matches no configuration"),
        (["fetch", DEMO, "--only", "seed=99"], "matches no configuration"),
        (["bench", "vit_nano_p4", "--batch", "0"], "argument --batch: must be a whole number from 1 to 65536, not '0'"),
        (["sweep", DEMO, "--estimate", "--tflops", "0"], "argument --tflops: must be a number above 0"),
        (["sweep", DEMO, "--timeout", "-5"], "argument --timeout: must be a number above 0"),
        (["sweep", DEMO, "--gpus", "0"], "argument --gpus: GPU 0 is not on this machine"),
    ],
)
def test_the_newcomers_reproductions_are_one_sentence_and_exit_2(capsys, monkeypatch, args, message):
    from alvit import flags

    monkeypatch.setattr(flags, "gpu_count", lambda: 0)  # as on the machine without CUDA of the report
    code, _, err = in_process(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1 and err.startswith("alvit: error: ")


def test_a_profile_that_is_not_yaml_is_one_sentence_naming_the_line(capsys, tmp_path):
    (tmp_path / "broken.yaml").write_text("name: x\ngrid:\n  seed: [0, 1\n")
    code, _, err = in_process(capsys, "sweep", str(tmp_path / "broken.yaml"))
    assert code == 2 and err.startswith(f"alvit: error: profile {tmp_path / 'broken.yaml'} is not valid YAML (line ")
    assert err.count("\n") == 1


def test_a_sweep_output_that_is_a_file_is_one_sentence_and_the_file_is_kept(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    code, _, err = in_process(
        capsys, "sweep", DEMO, "--output", str(tmp_path / "notes.txt"), "--only", "seed=0", "--quiet"
    )
    assert (
        code == 2
        and err
        == f"alvit: error: --output {tmp_path / 'notes.txt'} is a file, not a folder; "
        "choose a folder for the run folders\n"
    )
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_sweep_output_runs_the_profile_into_another_folder(capsys, tmp_path):
    from test_sweep import write_profile

    profile = write_profile(tmp_path, {"seed": [0]}, pages="none")
    code, out, err = in_process(capsys, "sweep", str(profile), "--output", str(tmp_path / "elsewhere"), "--quiet")
    assert code == 0, err
    assert out.splitlines()[0] == f"profile t: 1 configuration -> {tmp_path / 'elsewhere'}"
    assert list((tmp_path / "elsewhere").glob("digits-*/rounds.csv")) and not (tmp_path / "runs").exists()


def test_bench_replays_cuda_graphs_as_a_run_would_unless_told(monkeypatch):
    """Default: as train.cuda_graphs auto (on where compiled on CUDA); --graphs and --no-graphs decide."""
    from alvit import bench
    from alvit.cli import main

    asked = []
    monkeypatch.setattr(bench, "run_bench", lambda *args, **kwargs: asked.append(kwargs["graphs"]) or {})
    monkeypatch.setattr(bench, "format_report", lambda result: "")
    for flags in ([], ["--graphs"], ["--no-graphs"]):
        assert main(["bench", "vit_nano_p4", "--device", "cpu", *flags]) in (0, None)
    assert asked == ["auto", True, False]
