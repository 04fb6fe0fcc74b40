"""One forward per text for sentiment and topics: a sentiment bundle's ONNX graph that also returns what
its head reads, the pooled sentence embedding.

The default sentiment bundle is a fine-tuned MiniLM whose head reads the mean-pooled sentence embedding
(fmkit/models/text_classifier.py). Exposing that tensor as a second output of the bundle's own (INT8)
graph gives the few-shot topics an encoder for free: the topic centroids and every text's similarity
come from the same forward as its sentiment, instead of a second MiniLM forward. The bundle's files are
not changed (it is verified as always; the extra output is added to the graph in memory), so the
sentiment is exactly the bundle's. The embedding is the fine-tuned encoder's, not the base MiniLM's:
its topic quality is measured on the gold set (bench/monitor_models.py, docs/monitor_gold.md).

    model = EmbeddingOnnxRuntime(Path("workspace/monitor-sentiment/<key>/int8"), threads=2)
    logits, vectors = model.logits_and_embeddings(["Oil prices crash"])  # (1, 3), (1, 384) unit vectors
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError
from fmkit.runtime.base import ClassifierRuntime, require_finite

LOGITS = "logits"
EMBEDDINGS = "sentence_embedding"
MATMULS = ("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul")  # the head's linear layer, fp32 or INT8
QUANTIZERS = ("DynamicQuantizeLinear", "QuantizeLinear")  # INT8: the head's input is quantized first
PAD_MULTIPLE = 1  # CPU kernels gain nothing from rounding the length up (GPU tensor cores do): pad to the longest
FORWARD_BATCH = 64  # texts per forward: INT8 MiniLM on 2 cores ran 20-50% faster at 64 than at 32 (docs/monitor.md)


def head_input(graph, output: str = LOGITS) -> str:
    """The name of the fp32 tensor the classification head reads: the input of the linear layer nearest to
    ``output`` (behind its quantizer, in an INT8 graph). Raises when the graph has no such layer."""
    producers = {name: node for node in graph.node for name in node.output}
    constants = {tensor.name for tensor in graph.initializer}
    queue, seen = deque([output]), set()
    while queue:  # breadth first: the head's matmul is the one closest to the logits
        node = producers.get(queue.popleft())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in MATMULS:
            tensor = node.input[0]
            quantizer = producers.get(tensor)
            return quantizer.input[0] if quantizer is not None and quantizer.op_type in QUANTIZERS else tensor
        queue.extend(name for name in node.input if name and name not in constants)
    raise BadInputError(f"the graph's {output!r} comes from no linear layer: it has no sentence embedding to share")


def with_embedding_output(graph, hidden_size: int):
    """``graph`` (an onnx ModelProto, edited in place) with the head's input as a second output, EMBEDDINGS."""
    from onnx import TensorProto, helper

    tensor = head_input(graph.graph)
    graph.graph.node.append(helper.make_node("Identity", [tensor], [EMBEDDINGS], name="monitor_sentence_embedding"))
    graph.graph.output.append(helper.make_tensor_value_info(EMBEDDINGS, TensorProto.FLOAT, ["batch", hidden_size]))
    return graph


class EmbeddingOnnxRuntime(ClassifierRuntime):
    """A verified ONNX classifier bundle whose one session returns its logits and its sentence embedding.

    ``predict_proba`` and the rest of the runtime work as for ``fmkit.load``; ``logits_and_embeddings`` is
    the one forward the monitor's scorer runs per micro-batch when its topics share the encoder.
    """

    backend = "onnx"

    def __init__(self, path: Path, *, threads: int | None = None, batch_size: int | None = None):
        super().__init__(path, batch_size=batch_size or FORWARD_BATCH)  # verified, labels, tokenizer: a bad bundle
        # is refused here
        import onnx
        import onnxruntime as ort
        from transformers import AutoConfig

        from fmkit.bundle import loading_weights
        from fmkit.export.onnx import ONNX_FILE
        from fmkit.runtime.embeddings import INT8_OPS
        from fmkit.runtime.onnx_runtime import session_options

        if self.manifest.runtime != "onnx" or not (self.path / ONNX_FILE).is_file():
            raise BadInputError(f"{self.path} runs on {self.manifest.runtime!r}: sharing its encoder with the topics "
                                f"needs an ONNX bundle (fmkit compress {self.path} --method quantize-dynamic)")
        with loading_weights(self.path):
            hidden = int(AutoConfig.from_pretrained(str(self.path)).hidden_size)
            graph = with_embedding_output(onnx.load(str(self.path / ONNX_FILE)), hidden)
            self.session = ort.InferenceSession(graph.SerializeToString(), session_options(threads),
                                                providers=["CPUExecutionProvider"])
        self.runtime = "onnx-int8" if any(node.op_type in INT8_OPS for node in graph.graph.node) else "onnx"
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.dimension = hidden

    def forward(self, feed: dict) -> np.ndarray:
        (logits,) = self.session.run([LOGITS], {name: feed[name] for name in self.input_names})
        return logits.astype(np.float32, copy=False)

    def logits_and_embeddings(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(n, labels) logits and (n, hidden) L2-normalised embeddings, one forward per length-sorted batch."""
        from fmkit.data.batching import pad_arrays, sorted_batches

        encoded = self.encode(list(texts), warn=False)
        logits = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows in sorted_batches(encoded.lengths, self.batch_size):
            feed = pad_arrays([encoded.input_ids[i] for i in rows], self.tokenizer.pad_token_id, PAD_MULTIPLE)
            logits[rows], vectors[rows] = self.session.run([LOGITS, EMBEDDINGS],
                                                           {name: feed[name] for name in self.input_names})
        require_finite(logits, self.path)
        require_finite(vectors, self.path)
        return logits, vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
