"""Grounded composition latency (issue 16 part 5): SmolLM2-135M-Instruct drafting answers for the
held-out questions the assistant hands off, from their top 3 retrieved passages.

    .venv/bin/python bench/assistant_generation.py ASSISTANT_DIR HELD_OUT.csv \
        [--question-column q] [--answer-column a] [--questions 20] [--threads 2]

ASSISTANT_DIR and HELD_OUT.csv are what bench/assistant.py writes (WORK/assistants/fine-tuned,
WORK/data/held_out.csv). Reports the model's load time, p50/p99 seconds per draft (check included),
how many drafts were accepted (cited a retrieved passage and used its words) and, of those, how many
cite the passage holding the held-out question's approved answer. JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assistant")
    parser.add_argument("held_out")
    parser.add_argument("--question-column", default="q")
    parser.add_argument("--answer-column", default="a")
    parser.add_argument("--questions", type=int, default=20, help="handed-off questions to draft for")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import pandas as pd
    import torch

    from fmkit.apps.assistant import Assistant
    from fmkit.apps.assistant.generate import GroundedComposer, compose_if_needed

    torch.set_num_threads(args.threads)
    assistant = Assistant.open(args.assistant)
    frame = pd.read_csv(args.held_out)
    composer = GroundedComposer()
    started = time.perf_counter()
    composer.load()
    load_seconds = time.perf_counter() - started
    seconds, accepted, right_source, asked = [], 0, 0, 0
    for question, answer in zip(frame[args.question_column], frame[args.answer_column]):
        result = assistant.ask(str(question))
        asked += 1
        if not result["handoff"] or not result["matches"]:
            continue
        drafted = compose_if_needed(result, str(question), composer)
        seconds.append(drafted["generation"]["seconds"])
        if drafted["generated"]:
            accepted += 1
            cited = {s["id"] for s in drafted["sources"]}
            right_source += any(m["id"] in cited and m["text"].strip() == str(answer).strip()
                                for m in result["matches"])
        print(f"{len(seconds):3d} {seconds[-1]:6.2f} s {'accepted' if drafted['generated'] else 'refused '} "
              f"{drafted['generation']['reason'] or ''}", file=sys.stderr, flush=True)
        if len(seconds) >= args.questions:
            break
    if not seconds:
        sys.exit("no held-out question was handed off: nothing to draft")
    print(json.dumps({
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "threads": args.threads,
        "model": "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to fp32)", "load_seconds": round(load_seconds, 1),
        "questions_asked": asked, "drafts": len(seconds), "accepted": accepted, "refused": len(seconds) - accepted,
        "accepted_citing_the_right_answer": right_source,
        "draft_seconds_p50": round(float(np.percentile(seconds, 50)), 2),
        "draft_seconds_p99": round(float(np.percentile(seconds, 99)), 2),
        "max_new_tokens": composer.max_new_tokens, "passages": composer.passages,
    }, indent=2))


if __name__ == "__main__":
    main()
