"""Synthetic texts over a controlled vocabulary, seeded, with topics tied to the vectors' neighbourhoods.

Vocabulary: `vocab` made-up words of two or three consonant-vowel syllables whose vowels are a, o or u (e.g.
"bako", "tumora"). No English stemmer has a suffix ending in a, o or u, and none of them is a stopword, so
every engine's analyzer keeps each word as one token, unchanged: BM25 over them is the same in every engine
and in the harness' reference.

Documents: each record gets `words_min`..`words_max` words (uniform). A word is, with probability
`topic_share`, one of the `topic_words` words of the record's topic, else a word drawn from the whole
vocabulary with Zipfian frequencies (exponent `zipf`). A record's topic is the nearest (cosine) of `topics`
anchor vectors (base rows chosen by the seed), so text relevance correlates with the vector neighbourhood and
fusing the two rankings means something.

Queries: `query_words_min`..`query_words_max` distinct words, each with probability `query_topic_share` from
the query vector's topic, else Zipfian. Everything flows from the dataset seed; generating 10,000 texts takes
well under a second, so nothing is cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aou"
_SYL = [c + v for c in CONSONANTS for v in VOWELS]  # 42 syllables


@dataclass(frozen=True)
class TextParams:
    vocab: int = 5000
    zipf: float = 1.0
    topics: int = 50
    topic_words: int = 20
    topic_share: float = 0.3
    words_min: int = 5
    words_max: int = 30
    query_words_min: int = 2
    query_words_max: int = 5
    query_topic_share: float = 0.6


def word(i: int) -> str:
    """The i-th vocabulary word: two syllables for the first 42**2, three after."""
    n2 = len(_SYL) ** 2
    if i < n2:
        return _SYL[i // len(_SYL)] + _SYL[i % len(_SYL)]
    i -= n2
    return _SYL[(i // n2) % len(_SYL)] + _SYL[(i // len(_SYL)) % len(_SYL)] + _SYL[i % len(_SYL)]


def vocabulary(size: int) -> list[str]:
    return [word(i) for i in range(size)]


def _topics_of(vectors: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    def norm(x):
        n = np.linalg.norm(x, axis=1, keepdims=True)
        n[n == 0] = 1
        return x / n

    a = norm(np.asarray(anchors, dtype=np.float32))
    out = np.empty(len(vectors), dtype=np.int64)
    for s in range(0, len(vectors), 8192):
        out[s:s + 8192] = np.argmax(norm(np.asarray(vectors[s:s + 8192], dtype=np.float32)) @ a.T, axis=1)
    return out


def generate(base: np.ndarray, queries: np.ndarray, p: TextParams, seed: int) -> tuple[list[str], list[str]]:
    """(document texts, one per base row; query texts, one per query), deterministic from `seed`."""
    rng = np.random.default_rng([int(seed), 0x7E47])
    n = len(base)
    vocab = np.array(vocabulary(p.vocab), dtype=object)
    ranks = np.arange(1, p.vocab + 1, dtype=np.float64)
    zipf_p = ranks ** -p.zipf
    zipf_p /= zipf_p.sum()
    # topic words: a disjoint block per topic, from a seeded permutation of the vocabulary past its 50 most
    # frequent words (so a topic word is informative)
    pool = rng.permutation(np.arange(min(50, p.vocab // 10), p.vocab))
    topic_ids = pool[: p.topics * p.topic_words].reshape(p.topics, p.topic_words)
    anchors = np.asarray(base[np.sort(rng.choice(n, size=min(p.topics, n), replace=False))], dtype=np.float32)
    doc_topic = _topics_of(base, anchors)
    q_topic = _topics_of(queries, anchors)

    lens = rng.integers(p.words_min, p.words_max + 1, size=n)
    total = int(lens.sum())
    from_topic = rng.random(total) < p.topic_share
    zipf_words = rng.choice(p.vocab, size=total, p=zipf_p)
    topic_pick = rng.integers(0, p.topic_words, size=total)
    owner = np.repeat(np.arange(n), lens)
    words = np.where(from_topic, topic_ids[doc_topic[owner], topic_pick], zipf_words)
    ends = np.cumsum(lens)
    tokens = vocab[words]
    docs = [" ".join(tokens[e - ln:e]) for e, ln in zip(ends.tolist(), lens.tolist(), strict=True)]

    qtexts = []
    for t in q_topic.tolist():
        m = int(rng.integers(p.query_words_min, p.query_words_max + 1))
        chosen: list[int] = []
        while len(chosen) < m:  # distinct words: every engine then weighs each query term once
            w = (int(topic_ids[t, rng.integers(p.topic_words)]) if rng.random() < p.query_topic_share
                 else int(rng.choice(p.vocab, p=zipf_p)))
            if w not in chosen:
                chosen.append(w)
        qtexts.append(" ".join(vocab[chosen]))
    return docs, qtexts


def for_dataset(ds, hybrid, seed: int) -> tuple[list[str], list[str], str]:
    """(document texts, query texts, where they came from) for a hybrid run: the dataset's own texts (wordnet)
    when `hybrid.texts` is "dataset", or "auto" and the dataset has them; else synthetic from the seed."""
    from bench.errors import UserError

    own = ds.texts is not None and ds.query_texts is not None
    if hybrid.texts == "dataset" and not own:
        raise UserError(f"hybrid.texts = 'dataset' but dataset '{ds.name}' has no texts",
                        "set hybrid.texts = 'synthetic' (or 'auto'), or use source = 'wordnet-mpnet-768'")
    if hybrid.texts != "synthetic" and own:
        return list(ds.texts), list(ds.query_texts), f"{ds.name} texts"
    docs, queries = generate(ds.base, ds.queries, hybrid.text_params(), seed)
    return docs, queries, "synthetic"
