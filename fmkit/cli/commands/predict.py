"""fmkit predict: labels and probabilities for texts given inline or in a JSONL file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmkit.cli.common import add_json_flag, add_verify_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict",
        help="predict labels for texts (or image files, with an image bundle)",
        description="Predict with a bundle. Texts come as arguments, or --input FILE.jsonl "
        "(one {\"text\": ...} object or JSON string per line), or '-' for stdin lines. With an "
        "image-classification bundle the arguments are image files (PNG, JPEG, ...; --input: one path per line).",
        epilog='examples:\n  fmkit predict models/reviews-lora "a warm, funny, beautifully acted film"\n'
        "  fmkit predict models/fashion-cnn shirt.png boot.jpg",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument("texts", nargs="*", metavar="texts|images", help="texts to classify (image files for an "
                        "image bundle)")
    parser.add_argument("--input", help="JSONL file of texts ('-' reads plain lines from stdin)")
    parser.add_argument("--text-field", default="text", help="field holding the text in --input objects")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per batch (default: 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_verify_flag(parser)
    add_json_flag(parser)
    return parser


def read_inputs(args) -> list[str]:
    from fmkit.errors import BadInputError

    texts = list(args.texts)
    if args.input == "-":
        texts += [line.rstrip("\n") for line in sys.stdin if line.strip()]
    elif args.input:
        path = Path(args.input)
        if not path.is_file():
            raise BadInputError(f"--input {path} does not exist")
        from fmkit.data.readers import iter_jsonl

        for number, item in iter_jsonl(path):
            if isinstance(item, dict):
                if args.text_field not in item:
                    raise BadInputError(f"{path}, line {number}: no field {args.text_field!r}; "
                                        f"fields are {sorted(item)}. Set --text-field.")
                item = item[args.text_field]
            if not isinstance(item, str):
                raise BadInputError(f"{path}, line {number}: the text must be a string")
            texts.append(item)
    if not texts:
        raise BadInputError("no texts: pass them as arguments or with --input FILE.jsonl")
    return texts


def run(args) -> int:
    import fmkit

    model = fmkit.load(args.bundle, device=args.device, batch_size=args.batch_size)
    if getattr(model, "takes_images", False):
        return predict_images(model, args)
    texts = read_inputs(args)
    predictions = model.predict(texts)
    if args.json:
        print_json([{"text": t, **p.as_dict()} for t, p in zip(texts, predictions)])
    else:
        for text, prediction in zip(texts, predictions):
            confidence = prediction.probabilities[prediction.label]
            print(f"{prediction.label}\t{confidence:.4f}\t{text}")
    return 0


def predict_images(model, args) -> int:
    """Image files from the arguments (and --input: one path per line, '-' for stdin)."""
    from fmkit.errors import BadInputError

    paths = list(args.texts)
    if args.input:
        lines = sys.stdin if args.input == "-" else Path(args.input).read_text(encoding="utf-8").splitlines()
        paths += [line.strip() for line in lines if line.strip()]
    if not paths:
        raise BadInputError(f"no images: pass image files after {args.bundle}")
    predictions = model.predict(paths)
    if args.json:
        print_json([{"image": p, **prediction.as_dict()} for p, prediction in zip(paths, predictions)])
    else:
        for path, prediction in zip(paths, predictions):
            print(f"{prediction.label}\t{prediction.probabilities[prediction.label]:.4f}\t{path}")
    return 0
