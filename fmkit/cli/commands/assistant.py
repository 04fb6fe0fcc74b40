"""fmkit assistant: build a support assistant from an FAQ, ask it, evaluate it, split an FAQ for it.

``build``'s flags are generated from its config (fmkit/apps/assistant/config.py BuildConfig), so a
new setting there is a flag here with its help.
"""

from __future__ import annotations

import argparse
import sys

from fmkit.cli.common import add_json_flag, print_json

EPILOG = """examples:
  fmkit assistant split --faq support-faq --intent-column category --out data/faq
  fmkit finetune --task text-retrieval --model minilm --data data/faq/train.csv --query-column q \\
                 --document-column a --out models/faq-encoder
  fmkit assistant build --encoder models/faq-encoder --faq support-faq --validation-data data/faq/validation.csv \\
                        --intent-column category --out assistants/acme
  fmkit assistant ask assistants/acme "how long does a roof replacement take?" --json
  fmkit assistant evaluate assistants/acme --data data/faq/held_out.csv --json
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "assistant", help="a customer-service assistant: FAQ retrieval, intents, calibrated handoff",
        description="Build an assistant from a company's FAQ (question, approved answer, optional category) and an "
        "encoder (a text-retrieval bundle or the zero-shot minilm), ask it questions, and measure it on held-out "
        "questions. It answers with the approved answer when its calibrated confidence reaches the threshold "
        "chosen for the target precision, and hands off to a person below it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    build = actions.add_parser("build", help="index an FAQ (+ documents), calibrate the handoff, write the directory",
                               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    build.add_argument("--out", required=True, help="assistant directory to create (written atomically)")
    build.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_json_flag(build)
    build.defer(add_build_options)
    ask = actions.add_parser("ask", help="answer one question (or hand it off)")
    ask.add_argument("assistant", help="assistant directory")
    ask.add_argument("question", help="the customer's question")
    ask.add_argument("--top-k", type=int, default=5, help="matches to list (default: 5)")
    add_json_flag(ask)
    evaluate = actions.add_parser("evaluate", help="MRR@10, recall, handoff rate and precision on held-out questions")
    evaluate.add_argument("assistant", help="assistant directory")
    evaluate.add_argument("--data", required=True, help="held-out questions with their answers (CSV/TSV/JSONL/"
                          "Parquet); every answer should be in the FAQ the assistant indexed")
    evaluate.add_argument("--question-column", default="q", help="column with the question (default: q)")
    evaluate.add_argument("--answer-column", default="a", help="column with the right answer (default: a)")
    evaluate.add_argument("--no-report", action="store_true", help="do not write ASSISTANT/reports/")
    add_json_flag(evaluate)
    split = actions.add_parser("split", help="split an FAQ by question, stratified by category: train, validation, "
                               "held-out CSVs")
    split.add_argument("--faq", required=True, help="FAQ table or the built-in support-faq")
    split.add_argument("--question-column", default="q", help="column with the question (default: q)")
    split.add_argument("--answer-column", default="a", help="column with the answer (default: a)")
    split.add_argument("--intent-column", default=None, help="category column to stratify by (support-faq: category)")
    split.add_argument("--held-out", type=float, default=0.2, help="share of questions held out (default: 0.2)")
    split.add_argument("--validation", type=float, default=0.1, help="share of questions for calibration "
                       "(default: 0.1)")
    split.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    split.add_argument("--out", required=True, help="folder for train.csv, validation.csv, held_out.csv")
    return parser


def add_build_options(parser: argparse.ArgumentParser) -> None:
    from fmkit.apps.assistant.config import BuildConfig
    from fmkit.cli.from_config import Section, add_options

    parser.set_defaults(config_options=add_options(parser, [Section("", BuildConfig, "assistant")]))


def run(args) -> int:
    return {"build": run_build, "ask": run_ask, "evaluate": run_evaluate, "split": run_split}[args.action](args)


def run_build(args) -> int:
    from fmkit.apps.assistant.build import build_assistant
    from fmkit.apps.assistant.config import BuildConfig
    from fmkit.cli.from_config import apply_options

    args.config_model = BuildConfig
    settings: dict = {}
    apply_options(settings, args, args.config_options)
    cfg = BuildConfig.model_validate(settings)
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    build_assistant(cfg, args.out, overwrite=args.overwrite, log=log)
    if args.json:
        from fmkit.apps.assistant import Assistant

        print_json(Assistant.open(args.out).describe())
    return 0


def run_ask(args) -> int:
    from fmkit.apps.assistant import Assistant

    reply = Assistant.open(args.assistant).ask(args.question, top_k=args.top_k)
    if args.json:
        print_json(reply)
        return 0
    intent = f"  intent: {reply['intent']['label']} ({reply['intent']['probability']:.2f})" if reply["intent"] else ""
    print(f"confidence {reply['confidence']:.3f} (threshold {reply['threshold']:.3f}){intent}")
    print(reply["handoff_message"] if reply["handoff"] else reply["answer"])
    for match in reply["matches"]:
        print(f"  {match['rank']}. {match['score']:.3f}  {match['id']}  [{match['source']}]  {match['text'][:80]}")
    return 0


def run_evaluate(args) -> int:
    from fmkit.apps.assistant import Assistant
    from fmkit.apps.assistant.evaluate import evaluate_assistant

    result = evaluate_assistant(Assistant.open(args.assistant), args.data, args.question_column, args.answer_column,
                                write_report=not args.no_report)
    if args.json:
        print_json(result)
        return 0
    print(f"{result['questions']} questions, retrieval {result['retrieval']}")
    for key in ("mrr@10", "recall@1", "recall@5", "recall@10", "handoff_rate", "accuracy_answered"):
        value = result[key]
        print(f"  {key:18s} {'-' if value is None else f'{value:.4f}'}")
    print(f"  ask latency        p50 {result['latency_ms']['p50']:.1f} ms, p99 {result['latency_ms']['p99']:.1f} ms "
          f"({result['latency_ms']['runtime']})")
    print("ways (MRR@10): " + ", ".join(f"{name} {m['mrr@10']:.3f}" for name, m in result["ways"].items()))
    if result.get("plot"):
        print(f"coverage/precision curve: {result['plot']}")
    return 0


def run_split(args) -> int:
    from fmkit.apps.assistant.faq import write_split

    written = write_split(args.faq, args.question_column, args.answer_column, args.intent_column, args.out,
                          held_out=args.held_out, validation=args.validation, seed=args.seed)
    for name, (path, rows) in written.items():
        print(f"{name}: {rows} questions -> {path}")
    return 0
