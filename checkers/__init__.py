"""Claim checking: claims, entity graphs, graph and region checkers, LLM judge, pipeline.

Importing this package never imports torch, vllm or open_clip; heavy backends load lazily.
"""
