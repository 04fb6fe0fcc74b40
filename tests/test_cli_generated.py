"""The options of finetune, pretrain, compress and audit are generated from their configs (fmkit/cli/from_config.py).

Every config field has a flag, the help names every registered method/task/check, today's flags keep their
meaning, and a few command lines resolve to the configs the hand-written parser gave before the generator.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from fmkit.cli.from_config import Section, add_options, apply_options, sections_of
from fmkit.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ("finetune", "pretrain", "compress", "audit")


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command].build()


def flags_of(command: str) -> dict[str, argparse.Action]:
    return {flag: action for action in subparser(command)._actions for flag in action.option_strings}


def options_of(command: str):
    return subparser(command).get_default("config_options")


def help_of(command: str) -> str:
    return subparser(command).format_help()


# --- the generator on small models -----------------------------------------------------------------------------

class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(3, description="passes")
    seed: int = Field(0, description="seed of the order")
    clip: float | None = Field(1.0, description="clip norm; null disables")


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, description="seed of the split")
    mode: Literal["fast", "exact"] = Field("fast", description="how: 1% or 100% of it")
    verbose: bool = Field(True, description="say more")
    columns: list[str] = Field(default_factory=list, description="columns kept")
    inner: Inner = Field(default_factory=lambda: Inner(epochs=5))
    extra: Inner | None = Field(default_factory=Inner, description="a second one")
    weights: dict[str, float] = Field(default_factory=dict, description="weight per class")


def parse(sections, argv, **keywords):
    parser = argparse.ArgumentParser()
    options = add_options(parser, sections, **keywords)
    settings: dict = {}
    apply_options(settings, parser.parse_args(argv), options)
    return parser, options, settings


def test_each_field_becomes_a_flag_of_its_type():
    parser, options, settings = parse(sections_of(Outer, "outer"), [
        "--mode", "exact", "--no-verbose", "--columns", "a,b", "--epochs", "2", "--inner-seed", "4", "--clip", "none",
        "--extra-epochs", "7", "--weights", "{pos: 2, neg: 0.5}"])
    assert settings == {"mode": "exact", "verbose": False, "columns": ["a", "b"],
                        "inner": {"epochs": 2, "seed": 4, "clip": None}, "extra": {"epochs": 7},
                        "weights": {"pos": 2, "neg": 0.5}}  # a mapping is written as in a --config file
    assert Outer.model_validate(settings).inner.clip is None
    assert options["inner.seed"].flag == "--inner-seed"  # --seed is the root's: the section's name goes in front
    assert parse(sections_of(Outer, "outer"), ["--no-extra"])[2] == {"extra": None}
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "slow"])  # a Literal is a choice
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "two"])


def test_only_given_flags_reach_the_settings():
    assert parse(sections_of(Outer, "outer"), [])[2] == {}


def test_help_shows_descriptions_defaults_and_percent_signs_once():
    parser = parse(sections_of(Outer, "outer"), [])[0]
    text = " ".join(parser.format_help().split())
    assert "how: 1% or 100% of it (default: fast)" in text
    assert "passes (default: 5)" in text  # the parent's default_factory, not the field's 3
    assert "%%" not in text


def test_a_table_keeps_old_names_and_an_unresolvable_clash_is_an_error():
    _, options, settings = parse(sections_of(Outer, "outer"), ["--split-seed", "1"], names={"seed": "--split-seed"})
    assert settings == {"seed": 1} and options["inner.seed"].flag == "--seed"
    with pytest.raises(ValueError, match="--inner-seed"):
        add_options(argparse.ArgumentParser(), sections_of(Outer, "outer"), names={"mode": "--inner-seed"})


def test_sections_with_one_key_share_flags_and_name_their_owners():
    class A(BaseModel):
        name: Literal["a"] = "a"
        opset: int = Field(17, description="opset")

    class B(BaseModel):
        name: Literal["b"] = "b"
        opset: int = Field(13, description="opset")
        rate: float = Field(0.5, description="rate")

    sections = [Section("method", model, "methods", owner=owner, skip=("name",)) for owner, model in (("a", A), ("b", B))]
    parser, options, settings = parse(sections, ["--opset", "15", "--rate", "0.1"])
    assert settings == {"method": {"opset": 15, "rate": 0.1}}
    assert options["method.opset"].owners == ["a", "b"] and options["method.rate"].owners == ["b"]
    text = " ".join(parser.format_help().split())
    assert "--opset N opset (default: a 17, b 13)" in text  # both have it: no names
    assert "b: rate (default: 0.5)" in text


# --- the real commands -------------------------------------------------------------------------------------------

def leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every settable key of a config: its plain fields and the fields of the models nested in it."""
    from fmkit.cli.from_config import _nested_model, _optional

    keys = set()
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _nested_model(info.annotation)
        if nested is None:
            keys.add(key)
            continue
        keys |= leaf_keys(nested, key + ".")
        if _optional(info.annotation)[1] and not info.is_required() and info.get_default(call_default_factory=True):
            keys.add(key)  # --no-recovery
    return keys


def command_configs(command: str) -> list[tuple[type[BaseModel], str]]:
    """(config model, key prefix) of everything a command's flags should reach."""
    if command == "finetune":
        from fmkit.finetune.methods import FINETUNE_METHODS
        from fmkit.tasks import TASKS

        return ([(TASKS.get(name).get("finetune_config"), "") for name in TASKS if TASKS.get(name).finetune_config]
                + [(FINETUNE_METHODS.get(name).options, "method.") for name in FINETUNE_METHODS])
    if command == "compress":
        from fmkit.compress.config import CompressConfig
        from fmkit.compress.methods import COMPRESS_METHODS

        return [(CompressConfig, "")] + [(COMPRESS_METHODS.get(name).options, "method.") for name in COMPRESS_METHODS]
    if command == "pretrain":
        from fmkit.pretrain.config import PretrainConfig

        return [(PretrainConfig, "")]
    from fmkit.audit.run import AuditConfig

    return [(AuditConfig, "")]


# keys a command sets with its own arguments (a positional, --method, --task, --privacy)
HANDLED = {"finetune": {"task", "method", "method.name", "privacy"}, "compress": {"method", "method.name"},
           "pretrain": set(), "audit": {"checks"}}


@pytest.mark.parametrize("command", GENERATED)
def test_every_config_field_has_a_flag(command):
    options = options_of(command)
    wanted = set().union(*(leaf_keys(model, prefix) for model, prefix in command_configs(command)))
    missing = wanted - HANDLED[command] - set(options)
    assert not missing, f"fmkit {command}: no flag for {sorted(missing)}"


@pytest.mark.parametrize("command", GENERATED)
def test_every_flag_reaches_its_key(command):
    """Give each generated flag a value of its type and find it at its config key."""
    parser = subparser(command)
    required = {"finetune": ["--out", "x"], "pretrain": ["--out", "x"], "compress": ["b", "--method", "m", "--out", "x"],
                "audit": ["pii", "b"]}[command]
    for option in options_of(command).values():
        action = next(a for a in parser._actions if option.flag in a.option_strings)
        if isinstance(action, argparse.BooleanOptionalAction):
            argv, expected = [option.flag], True
        elif action.nargs == 0:
            argv, expected = [option.flag], action.const
        elif action.choices:
            argv, expected = [option.flag, str(action.choices[0])], action.choices[0]
        else:
            argv, expected = [option.flag, "7"], action.type("7")
            expected = [expected] if action.nargs == "+" else expected
        settings: dict = {}
        apply_options(settings, parser.parse_args(required + argv), {option.key: option})
        value = settings
        for part in option.key.split("."):
            value = value[part]
        assert value == expected, (option.flag, value)


def test_help_names_every_registered_method_task_size_and_check():
    from fmkit.audit.run import CHECKS
    from fmkit.compress.methods import COMPRESS_METHODS
    from fmkit.finetune.methods import FINETUNE_METHODS
    from fmkit.pretrain.sizes import MODEL_SIZES
    from fmkit.tasks import TASKS

    tasks = [name for name in TASKS if TASKS.get(name).finetune_config]
    for command, names in (("compress", COMPRESS_METHODS), ("finetune", [*FINETUNE_METHODS, *tasks]),
                           ("pretrain", MODEL_SIZES), ("audit", CHECKS)):
        text = help_of(command)
        assert not [name for name in names if name not in text], command


def test_run_help_names_every_registered_stage():
    from fmkit.recipe.stages import load_stages

    text = help_of("run")
    assert not [name for name in load_stages() if f"  {name} " not in text]


@pytest.mark.parametrize("command", GENERATED)
def test_every_flag_says_what_it_does(command):
    """A field without a description would get a flag whose help is only its default: describe the field."""
    actions = {flag: action for flag, action in flags_of(command).items()}
    bare = [option.flag for option in options_of(command).values()
            if not re.sub(r"\(default: [^)]*\)|^[\w, -]+: ", "", actions[option.flag].help).strip()]
    assert not bare


@pytest.mark.parametrize("command", GENERATED)
def test_help_prints_percent_signs_once(command):
    assert "%%" not in help_of(command)


def test_quantize_static_calibration_and_fallback_are_reachable():
    from fmkit.cli.commands.compress import build_config

    args = build_parser().parse_args(["compress", "b", "--method", "quantize-static", "--out", "x",
                                      "--calibration-samples", "64", "--no-fallback", "--validation-samples", "100",
                                      "--no-per-channel"])
    method = build_config(args).method
    assert (method.calibration_samples, method.fallback, method.validation_samples, method.per_channel) == (
        64, False, 100, False)


def test_a_method_option_given_to_another_method_is_bad_input():
    from fmkit.cli.commands.compress import build_config
    from fmkit.errors import BadInputError

    args = build_parser().parse_args(["compress", "b", "--method", "distill", "--sparsity", "0.5", "--out", "x"])
    with pytest.raises(BadInputError, match="--sparsity applies to --method prune-magnitude, not to --method distill"):
        build_config(args)
    from fmkit.cli.commands import finetune

    from fmkit.finetune.config import FinetuneConfig

    assert finetune.DEFAULT_METHOD == FinetuneConfig.model_fields["method"].default
    args = build_parser().parse_args(["finetune", "--data", "d.csv", "--lora-r", "4", "--out", "x"])
    with pytest.raises(BadInputError, match="--lora-r applies to --method lora, not to --method full"):
        finetune.build_config(args)


# --- today's flags keep working ----------------------------------------------------------------------------------

# flag -> the config key it set before the options were generated (None: the command's own argument)
OLD_FLAGS = {
    "finetune": {
        "--out": None, "--config": None, "--task": None, "--method": None, "--privacy": None, "--resume": None,
        "--overwrite": None, "--keep-checkpoints": None, "--json": None,
        "--model": "model", "--data": "data.source", "--text-column": "data.text_column",
        "--label-column": "data.label_column", "--format": "data.format", "--max-rows": "data.max_rows",
        "--split-seed": "data.seed", "--validation-fraction": "data.validation_fraction",
        "--test-fraction": "data.test_fraction", "--max-length": "max_length", "--image-size": "data.image_size",
        "--channels": "data.channels", "--input-size": "input_size", "--augment": "augment", "--no-augment": "augment",
        "--lora-r": "method.r", "--lora-alpha": "method.alpha", "--dropout": "dropout", "--epochs": "train.epochs",
        "--batch-size": "train.batch_size", "--gradient-accumulation-steps": "train.gradient_accumulation_steps",
        "--learning-rate": "train.learning_rate", "--weight-decay": "train.weight_decay",
        "--warmup-ratio": "train.warmup_ratio", "--precision": "train.precision", "--device": "train.device",
        "--patience": "train.early_stopping_patience", "--checkpoint-every": "train.checkpoint_every_steps",
        "--max-steps": "train.max_steps", "--seed": "train.seed", "--threads": "train.num_threads",
        "--target-epsilon": "privacy.target_epsilon", "--delta": "privacy.delta",
        "--max-grad-norm": "privacy.max_grad_norm", "--accountant": "privacy.accountant",
        "--dp-dropout": "privacy.dropout", "--no-progress": "train.progress"},
    "pretrain": {
        "--out": None, "--config": None, "--resume": None, "--overwrite": None, "--keep-checkpoints": None,
        "--json": None, "--corpus": "corpus", "--size": "size", "--from": "from_model", "--vocab-size": "vocab_size",
        "--min-frequency": "min_frequency", "--seq-length": "seq_length", "--mask-probability": "mask_probability",
        "--whole-word": "whole_word_masking", "--heldout-fraction": "heldout_fraction", "--epochs": "train.epochs",
        "--max-tokens": "max_tokens", "--batch-size": "train.batch_size", "--learning-rate": "train.learning_rate",
        "--warmup-ratio": "train.warmup_ratio", "--precision": "train.precision", "--device": "train.device",
        "--eval-every": "train.eval_every_steps", "--checkpoint-every": "train.checkpoint_every_steps",
        "--max-steps": "train.max_steps", "--seed": "train.seed", "--threads": "train.num_threads",
        "--no-progress": "train.progress"},
    "compress": {
        "--method": None, "--out": None, "--overwrite": None, "--no-verify": None, "--json": None,
        "--max-accuracy-drop": "max_accuracy_drop", "--accuracy-budget": "accuracy_budget", "--data": "data",
        "--sparsity": "method.sparsity", "--student-layers": "method.student_layers", "--alpha": "method.alpha",
        "--temperature": "method.temperature", "--threads": "measure.threads", "--no-measure": "measure.enabled"},
    "audit": {
        "--no-record": None, "--no-verify": None, "--json": None, "--data": "data", "--split": "split",
        "--sensitive": "sensitive", "--positive-label": "positive_label", "--bootstrap": "n_bootstrap",
        "--min-group-size": "min_group_size", "--max-rows": "max_rows", "--explain-rows": "explain_rows",
        "--terms": "terms", "--reference": "reference", "--steps": "n_steps", "--seed": "seed", "--device": "device",
        "--no-progress": "progress"},
}


@pytest.mark.parametrize("command", GENERATED)
def test_old_flags_set_the_same_keys(command):
    flags = flags_of(command)
    by_flag = {}
    for option in options_of(command).values():
        for flag in flags[option.flag].option_strings:
            by_flag[flag] = option.key
    for flag, key in OLD_FLAGS[command].items():
        assert flag in flags, f"fmkit {command} {flag} no longer parses"
        if key is not None:
            assert by_flag.get(flag) == key, f"fmkit {command} {flag} sets {by_flag.get(flag)}, was {key}"


def documented_command_lines():
    """(file, command, argument text) of every `fmkit finetune|pretrain|compress|audit ...` in README.md, docs/,
    recipes/ and bench/ (continuation lines joined), and of every ("finetune", ...) argument list in tests/ and bench/."""
    lines = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "recipes").glob("*")),
                 *sorted((ROOT / "bench").glob("*.py"))]:
        text = path.read_text(encoding="utf-8").replace("\\\n", " ")
        for match in re.finditer(r"fmkit (finetune|pretrain|compress|audit)\b([^\n`#|;)\"']*)", text):
            lines.append((path.name, match.group(1), match.group(2)))
    for path in sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "bench").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"[\[(]\s*\"(finetune|pretrain|compress|audit)\",", text):
            lines.append((path.name, match.group(1), _until_closed(text, match.end())))
    return lines


def _until_closed(text: str, start: int) -> str:
    """The text from ``start`` up to the bracket that closes the one before it."""
    depth = 0
    for index in range(start, len(text)):
        depth += text[index] in "([{"
        depth -= text[index] in ")]}"
        if depth < 0:
            return text[start:index]
    return text[start:]


def test_documented_and_tested_flags_parse():
    lines = documented_command_lines()
    assert len(lines) > 40
    known = {command: set(flags_of(command)) for command in GENERATED}
    unknown = [(name, command, flag) for name, command, rest in lines
               for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest) if flag not in known[command]]
    assert not unknown


# command line -> the settings the hand-written parser resolved it to (recorded before the generator)
BEFORE = [
    ("finetune --data reviews.csv --method lora --out x", {"data": {"source": "reviews.csv"}, "method": "lora"}),
    ("finetune --data reviews.csv --text-column t --label-column l --format csv --max-rows 100 --split-seed 3 "
     "--validation-fraction 0.2 --test-fraction 0.15 --max-length 64 --method lora --lora-r 4 --lora-alpha 8 "
     "--dropout 0.2 --epochs 2 --batch-size 8 --gradient-accumulation-steps 2 --learning-rate 1e-4 --weight-decay 0.0 "
     "--warmup-ratio 0.1 --precision fp32 --device cpu --patience 3 --checkpoint-every 50 --max-steps 10 --seed 5 "
     "--threads 2 --no-progress --out x",
     {"data": {"source": "reviews.csv", "text_column": "t", "label_column": "l", "format": "csv", "max_rows": 100,
               "seed": 3, "validation_fraction": 0.2, "test_fraction": 0.15},
      "max_length": 64, "method": {"name": "lora", "r": 4, "alpha": 8}, "dropout": 0.2,
      "train": {"epochs": 2, "batch_size": 8, "gradient_accumulation_steps": 2, "learning_rate": 1e-4,
                "weight_decay": 0.0, "warmup_ratio": 0.1, "precision": "fp32", "device": "cpu",
                "early_stopping_patience": 3, "checkpoint_every_steps": 50, "max_steps": 10, "seed": 5,
                "num_threads": 2, "progress": False}}),
    ("finetune --data reviews.csv --privacy dp --target-epsilon 4 --delta 1e-5 --max-grad-norm 0.5 --accountant rdp "
     "--dp-dropout --out x",
     {"data": {"source": "reviews.csv"},
      "privacy": {"target_epsilon": 4.0, "delta": 1e-5, "max_grad_norm": 0.5, "accountant": "rdp", "dropout": True}}),
    ("finetune --model cnn --data fashion-mnist --image-size 32 --channels 1 --input-size 64 --no-augment --epochs 1 "
     "--out x",
     {"model": "cnn", "data": {"source": "fashion-mnist", "image_size": 32, "channels": 1}, "input_size": 64,
      "augment": False, "train": {"epochs": 1}}),
    ("finetune --config {config} --epochs 2 --lora-r 16 --out x",
     {"data": {"source": "file.csv", "text_column": "body"}, "method": {"name": "lora", "r": 16},
      "train": {"batch_size": 4, "epochs": 2}}),
    ("pretrain --corpus a.txt b.txt --size mini --out x", {"corpus": ["a.txt", "b.txt"], "size": "mini"}),
    ("pretrain --from minilm --corpus t.txt --out x", {"corpus": ["t.txt"], "from_model": "minilm"}),
    ("pretrain --corpus c --size tiny --vocab-size 200 --min-frequency 1 --seq-length 32 --mask-probability 0.2 "
     "--whole-word --heldout-fraction 0.1 --epochs 1 --max-tokens 1000 --batch-size 8 --learning-rate 1e-3 "
     "--warmup-ratio 0.0 --precision fp32 --device cpu --eval-every 5 --checkpoint-every 10 --seed 1 --threads 1 "
     "--no-progress --out x",
     {"corpus": ["c"], "size": "tiny", "vocab_size": 200, "min_frequency": 1, "seq_length": 32,
      "mask_probability": 0.2, "whole_word_masking": True, "heldout_fraction": 0.1, "max_tokens": 1000,
      "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.0, "precision": "fp32",
                "device": "cpu", "eval_every_steps": 5, "checkpoint_every_steps": 10, "seed": 1, "num_threads": 1,
                "progress": False}}),
    ("compress B --method quantize-dynamic --out o", {"method": "quantize-dynamic"}),
    ("compress B --method distill --student-layers 2 --alpha 0.3 --temperature 3 --out o",
     {"method": {"name": "distill", "student_layers": 2, "alpha": 0.3, "temperature": 3.0}}),
    ("compress B --method prune-magnitude --sparsity 0.5 --max-accuracy-drop 2 --accuracy-budget step --data d.csv "
     "--threads 2 --no-measure --out o",
     {"method": {"name": "prune-magnitude", "sparsity": 0.5}, "max_accuracy_drop": 2.0, "accuracy_budget": "step",
      "data": "d.csv", "measure": {"threads": 2, "enabled": False}}),
    ("audit fairness B --data adult --sensitive sex,race", {"checks": ["fairness"], "data": "adult",
                                                            "sensitive": ["sex", "race"]}),
    ("audit privacy B --reference R --seed 3 --bootstrap 50 --min-group-size 10 --steps 16 --device cpu "
     "--no-progress --split validation --positive-label 1 --terms t.json --max-rows 300 --explain-rows 20",
     {"checks": ["privacy"], "reference": "R", "seed": 3, "n_bootstrap": 50, "min_group_size": 10, "n_steps": 16,
      "device": "cpu", "progress": False, "split": "validation", "positive_label": "1", "terms": "t.json",
      "max_rows": 300, "explain_rows": 20}),
    ("audit robustness B --json", {"checks": ["robustness"], "progress": False}),
]


@pytest.mark.parametrize("line, settings", BEFORE, ids=[line[:40] for line, _ in BEFORE])
def test_old_command_lines_resolve_to_the_same_config(line, settings, tmp_path):
    import importlib

    config = tmp_path / "settings.yaml"
    config.write_text("train:\n  epochs: 1\n  batch_size: 4\ndata:\n  source: file.csv\n  text_column: body\nmethod: lora\n")
    argv = shlex.split(line.format(config=config))
    args = build_parser().parse_args(argv)
    resolved = importlib.import_module(f"fmkit.cli.commands.{argv[0]}").build_config(args)
    if argv[0] == "finetune":
        from fmkit.tasks import finetune_config

        expected = finetune_config(settings)
    else:
        expected = type(resolved).model_validate(settings)
    assert resolved.model_dump() == expected.model_dump()


def test_flags_fill_sections_a_config_file_left_null(tmp_path):
    from fmkit.cli.commands.finetune import build_config

    config = tmp_path / "settings.yaml"
    config.write_text("data:\n  source: file.csv\nprivacy: null\ntrain: null\n")
    args = build_parser().parse_args(["finetune", "--config", str(config), "--privacy", "dp", "--epochs", "2",
                                      "--out", "x"])
    cfg = build_config(args)
    assert cfg.privacy is not None and cfg.train.epochs == 2
