"""Featurization (molecules/s) and tokenization (texts/s) throughput, uncached vs cached.

Usage: python bench/featurization.py [--quick]   (needs TAPWEIGHT_DATA_DIR for ZINC and TAPT text)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record, table  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    os.environ["TAPWEIGHT_CACHE_DIR"] = tempfile.mkdtemp(prefix="tapweight-bench-")
    os.environ.setdefault("TAPWEIGHT_OFFLINE", "1")
    from tapweight.data import HuFeaturizer, MoleculeDataset
    from tapweight.data.text_tasks import load_text_task
    from tapweight.data.tokenized import tokenize_texts
    from tapweight.models import load_tokenizer

    count = 2000 if args.quick else 10000
    rows, figures = [], {}
    for motifs in (False, True):
        featurizer = HuFeaturizer(motifs=motifs)
        _, fresh = _timed(
            lambda f=featurizer: MoleculeDataset(
                "zinc250k_subset_jtvae", featurizer=f, max_molecules=count
            )
        )
        _, cached = _timed(
            lambda f=featurizer: MoleculeDataset(
                "zinc250k_subset_jtvae", featurizer=f, max_molecules=count
            )
        )
        key = "with_motifs" if motifs else "atoms_bonds_only"
        figures[key] = {
            "molecules": count,
            "uncached_per_s": count / fresh,
            "cached_per_s": count / cached,
        }
        rows.append(
            [
                f"ZINC, {count} molecules, {'with' if motifs else 'without'} 85 motif labels",
                f"{count / fresh:,.0f}",
                f"{count / cached:,.0f}",
            ]
        )
    tokenizer = load_tokenizer("minilm")
    texts = load_text_task("tapt_citation_intent").unlabeled
    _, fresh = _timed(lambda: tokenize_texts(texts, tokenizer, 128))
    _, cached = _timed(lambda: tokenize_texts(texts, tokenizer, 128))
    figures["tokenization"] = {
        "texts": len(texts),
        "uncached_per_s": len(texts) / fresh,
        "cached_per_s": len(texts) / cached,
    }
    rows.append(
        [
            f"citation_intent TAPT text, {len(texts)} texts, MiniLM WordPiece, 128 tokens",
            f"{len(texts) / fresh:,.0f}",
            f"{len(texts) / cached:,.0f}",
        ]
    )
    note = (
        "Uncached: read the source file, featurize (RDKit parse + Hu et al. features) or tokenize, "
        "write the content-hashed cache. Cached: load that cache. Items per second, one process."
    )
    record(
        "featurization",
        "Featurization and tokenization throughput",
        figures,
        note + "\n\n" + table(["what", "uncached items/s", "cached items/s"], rows),
    )


if __name__ == "__main__":
    main()
