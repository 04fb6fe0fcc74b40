"""fmkit predict: labels and probabilities for texts given inline or in a JSONL file."""

from __future__ import annotations

import argparse

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
    parser.add_argument("--input", help="JSONL file of texts, or .txt with one text per line ('-' reads "
                        "lines from stdin); UTF-8")
    parser.add_argument("--text-field", default="text", help="field holding the text in --input objects")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per batch (default: 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_verify_flag(parser)
    add_json_flag(parser)
    return parser


def read_inputs(args) -> list[str]:
    from fmkit.data.inputs import read_texts

    return read_texts(args.texts, args.input, args.text_field)


def run(args) -> int:
    import fmkit

    model = fmkit.load(args.bundle, device=args.device, batch_size=args.batch_size)
    if model.adapter.capabilities.serves == "images":  # its task reads image files, not texts
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
    from fmkit.data.inputs import read_image_paths

    paths = read_image_paths(args.texts, args.input, args.bundle)
    predictions = model.predict(paths)
    if args.json:
        print_json([{"image": p, **prediction.as_dict()} for p, prediction in zip(paths, predictions)])
    else:
        for path, prediction in zip(paths, predictions):
            print(f"{prediction.label}\t{prediction.probabilities[prediction.label]:.4f}\t{path}")
    return 0
