"""Report-generation and hallucination metrics as pure functions over our dataclasses.

- ``radgraph_f1``: RadGraph F1 (simple / partial / complete), radgraph annotation export/import
- ``chexpert``: CheXpert 14-observation labels from findings, label F1 (micro/macro, 14 and 5)
- ``radfact``: RadFact-style logical and grounding precision/recall
- ``green``: GREEN-style error counts and the hallucination rate
- ``text``: BLEU-4 (nltk) and ROUGE-L (rouge-score)
- ``bootstrap``: seeded bootstrap confidence intervals
- ``judge``: the optional LLM entailment judge (langchain, imported lazily)

No module here reads files except the versioned data files it names (``evals/data``).
"""
