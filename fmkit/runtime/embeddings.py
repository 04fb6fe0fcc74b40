"""The encoder runtime: texts -> L2-normalised float32 embeddings, on PyTorch, ONNX or INT8 ONNX.

Opens a text-retrieval bundle (the runtime its manifest names: "torch" for the fine-tuned
encoder, "onnx" for its `fmkit compress --method export-onnx` / `quantize-dynamic` variants) or a
zero-shot base (``minilm``, a local sentence-transformers or HF folder, mean pooling unless it
declares another). Texts are tokenized once, batched longest first so each batch pads to its own
longest text, and every backend returns the same unit vectors (cosine = dot product).

    from fmkit.retrieval import load_encoder
    encoder = load_encoder("models/faq-encoder")        # or "minilm"
    vectors = encoder.encode(["how long does a roof take?"])   # (1, 384) float32, norm 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from fmkit.errors import BadInputError

RUNTIME_CHOICES = ("auto", "torch", "onnx")
DEFAULT_BATCH = 32  # texts per forward pass
FALLBACK_MAX_LENGTH = 256  # tokens, for a base that declares no limit (MiniLM declares 256)
INT8_OPS = {"MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv", "ConvInteger"}


class Encoder:
    """What every backend shares: tokenizing, length-sorted batching, the finite-output check.

    ``name`` is what was opened (a bundle path or a built-in name), ``digest`` its content digest
    (a bundle's, or the hash of a base model's files), ``runtime`` "torch", "onnx" or "onnx-int8".
    """

    runtime = "base"

    def __init__(self, path: Path, *, name: str, digest: str, max_length: int, batch_size: int, manifest=None):
        from transformers import AutoTokenizer

        from fmkit.bundle import loading_weights

        self.path, self.name, self.digest, self.manifest = Path(path), name, digest, manifest
        self.max_length, self.batch_size = max_length, batch_size
        with loading_weights(self.path):
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))

    @property
    def dimension(self) -> int:
        raise NotImplementedError

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:  # padded ids + mask -> (batch, dim) fp32
        raise NotImplementedError

    def encode(self, texts: Sequence[str] | str, batch_size: int | None = None) -> np.ndarray:
        """(n, dim) float32, each row of norm 1, in the order of ``texts``."""
        from fmkit.data.batching import encode_texts, pad_arrays, sorted_batches
        from fmkit.data.clean import normalize_text

        if isinstance(texts, str):
            texts = [texts]
        output = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not len(texts):
            return output
        encoded = encode_texts(self.tokenizer, [normalize_text(str(t)) for t in texts], self.max_length, warn=False)
        for indices in sorted_batches(encoded.lengths, batch_size or self.batch_size):
            feed = pad_arrays([encoded.input_ids[i] for i in indices], self.tokenizer.pad_token_id)
            vectors = self.forward(feed)
            if not np.isfinite(vectors).all():
                raise BadInputError(f"{self.name} produced non-finite embeddings: its weights are damaged; "
                                    f"check them with `fmkit info {self.path}`")
            output[indices] = vectors
        return output

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, runtime={self.runtime}, dim={self.dimension})"


class TorchEncoder(Encoder):
    runtime = "torch"

    def __init__(self, path: Path, *, device: str = "auto", precision: str = "fp32", threads: int | None = None,
                 **common):
        super().__init__(path, **common)
        import torch

        from fmkit.retrieval.encoder_model import load_bi_encoder
        from fmkit.train.precision import resolve_precision, select_device

        if threads:
            torch.set_num_threads(threads)
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        self.model = load_bi_encoder(self.path).to(device=self.device, dtype=dtypes[self.precision]).eval()

    @property
    def dimension(self) -> int:
        return self.model.dimension

    def forward(self, feed):
        import torch

        with torch.inference_mode():
            tensors = {name: torch.from_numpy(array).to(self.device) for name, array in feed.items()}
            return self.model(**tensors).float().cpu().numpy()


class OnnxEncoder(Encoder):
    runtime = "onnx"

    def __init__(self, path: Path, *, device: str = "auto", threads: int | None = None, **common):
        super().__init__(path, **common)
        import onnx
        import onnxruntime as ort

        from fmkit.bundle import loading_weights
        from fmkit.export.onnx import ONNX_FILE
        from fmkit.runtime.onnx_runtime import session_options

        model_file = self.path / ONNX_FILE
        if not model_file.is_file():
            raise BadInputError(f"{self.path} has no {ONNX_FILE}; make one with `fmkit compress {self.path} --method "
                                "export-onnx` (fp32) or `--method quantize-dynamic` (INT8), or use runtime='torch'")
        if device.startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BadInputError("device=cuda but onnxruntime has no CUDA provider; install onnxruntime-gpu")
        providers = (["CUDAExecutionProvider"] if device.startswith("cuda") else []) + ["CPUExecutionProvider"]
        with loading_weights(self.path):
            graph = onnx.load(str(model_file), load_external_data=False)
            self.session = ort.InferenceSession(str(model_file), session_options(threads), providers=providers)
        if any(node.op_type in INT8_OPS for node in graph.graph.node):
            self.runtime = "onnx-int8"
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._dimension = int(self.session.get_outputs()[0].shape[-1])

    @property
    def dimension(self) -> int:
        return self._dimension

    def forward(self, feed):
        (vectors,) = self.session.run(None, {name: feed[name] for name in self.input_names})
        return vectors.astype(np.float32, copy=False)


BACKENDS = {"torch": TorchEncoder, "onnx": OnnxEncoder}


def load_encoder(source, runtime: str = "auto", *, device: str = "auto", threads: int | None = None,
                 batch_size: int = DEFAULT_BATCH, precision: str = "fp32", verify: bool = True) -> Encoder:
    """An :class:`Encoder` for a text-retrieval bundle or a zero-shot base model (built-in name or folder).

    ``runtime="auto"``: the bundle's own (its manifest's ``runtime``), PyTorch for a base model.
    A bundle is verified first (content digest and seal); a bundle of another task is refused.
    """
    from fmkit.bundle import is_bundle, open_bundle
    from fmkit.offline import enforce_offline

    enforce_offline()
    if runtime not in RUNTIME_CHOICES:
        raise BadInputError(f"runtime={runtime!r}: use one of {', '.join(RUNTIME_CHOICES)}")
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir() and is_bundle(path):
        from fmkit.tasks.text_retrieval import require_encoder_bundle

        manifest = open_bundle(path, verify=verify)
        require_encoder_bundle(manifest, path)
        chosen = manifest.runtime if runtime == "auto" else runtime
        common = {"name": text, "digest": manifest.content_digest, "max_length": manifest.max_length,
                  "batch_size": batch_size, "manifest": manifest}
    else:
        from fmkit.finetune.text_model import base_model_record
        from fmkit.models import resolve_model
        from fmkit.retrieval.layout import declared_max_length

        base = resolve_model(text)
        if runtime == "onnx":
            raise BadInputError(f"{text} is a base model with no ONNX graph; fine-tune it (fmkit finetune --task "
                                "text-retrieval) and export the bundle, or use runtime='torch'")
        path, chosen = base.path, "torch"
        common = {"name": text, "digest": base_model_record(base)["digest"],
                  "max_length": declared_max_length(base.path) or FALLBACK_MAX_LENGTH, "batch_size": batch_size}
    if chosen not in BACKENDS:
        raise BadInputError(f"{text} runs on {chosen!r}, which the encoder runtime does not have "
                            f"({', '.join(BACKENDS)})")
    options = {"precision": precision} if chosen == "torch" else {}
    return BACKENDS[chosen](path, device=device, threads=threads, **options, **common)
