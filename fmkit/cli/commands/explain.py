"""fmkit explain: which words pushed the prediction (integrated gradients), as text, JSON or HTML."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "explain", help="per-word attributions of a prediction (Captum integrated gradients)",
        description="Explain predictions with layer integrated gradients on the word embeddings (Captum), batched "
        "so memory stays bounded. Positive attribution pushes towards the explained class. Needs a PyTorch bundle; "
        "for a quantized or ONNX variant, explain the bundle it was compressed from.",
        epilog='example: fmkit explain models/reviews "the plot is thin but the acting is superb" --html out.html',
    )
    parser.add_argument("bundle", help="bundle directory (PyTorch runtime)")
    parser.add_argument("texts", nargs="*", help="texts to explain (or --file)")
    parser.add_argument("--file", help="a text file, one text per line")
    parser.add_argument("--target", help="explain this label (default: the predicted one)")
    parser.add_argument("--steps", type=int, default=50, help="integrated-gradients steps (default 50)")
    parser.add_argument("--internal-batch-size", type=int, default=64,
                        help="interpolated inputs per forward/backward pass; lower it if memory is short (default 64)")
    parser.add_argument("--html", help="also write an HTML page with the words highlighted")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from pathlib import Path

    from fmkit.audit.explain import Explainer, explanation_html
    from fmkit.errors import BadInputError
    from fmkit.fileio import write_text_atomic

    texts = list(args.texts)
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise BadInputError(f"--file {path} does not exist")
        texts += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts or any(not t.strip() for t in texts):
        raise BadInputError("give one or more non-empty texts (arguments or --file)")
    explainer = Explainer(args.bundle, device=args.device, n_steps=args.steps,
                          internal_batch_size=args.internal_batch_size)
    explanations = explainer.explain(texts, target=args.target, progress=len(texts) > 8 and not args.json)
    if args.html:
        write_text_atomic(Path(args.html), explanation_html(explanations, f"Explanations: {Path(args.bundle).name}"))
    if args.json:
        print_json([e.as_dict() for e in explanations])
        return 0
    for e in explanations:
        print(f"{e.label} (p={e.probability:.3f}, completeness δ={e.convergence_delta:+.1e}): {e.text}")
        ranked = sorted(e.words, key=lambda w: -abs(w["attribution"]))
        print("  " + "  ".join(f"{w['word']} {w['attribution']:+.3f}" for w in ranked[:8]))
    if args.html:
        print(f"wrote {args.html}")
    return 0
