"""Build a tiny RadGraph model folder from configs (random weights), IN the radgraph
environment (transformers 4): python build_tiny_radgraph.py OUT. Gives OUT/radgraph/
(config.json, vocabulary/, weights.th) and OUT/bert/ (a 1-layer BERT with a word-piece
vocabulary), which ``radgraph.RadGraph(model_type="radgraph", model_cache_dir=OUT)`` loads.
Nothing is downloaded."""

import json
import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

WORDS = ("no pleural effusion small right left lung lungs are clear heart size normal the is there "
         "mild cardiomegaly pneumothorax focal consolidation opacity base none . , - / : ( )").split() + list("0123456789")
# (allennlp tells the special tokens apart by tokenizing "1" and "2": they must be words)


def main(out: str) -> None:
    torch.manual_seed(0)
    out_dir = Path(out)
    bert = out_dir / "bert"
    bert.mkdir(parents=True, exist_ok=True)
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(bert / "vocab.txt"), do_lower_case=True).save_pretrained(bert)
    BertModel(BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(bert)
    model_dir = out_dir / "radgraph"
    voc = model_dir / "vocabulary"
    voc.mkdir(parents=True, exist_ok=True)
    (voc / "non_padded_namespaces.txt").write_text("*labels\n*tags\n")
    (voc / "radgraph__ner_labels.txt").write_text("\nANAT-DP\nOBS-DP\nOBS-U\nOBS-DA\n")  # "" (no entity) first
    (voc / "radgraph__relation_labels.txt").write_text("located_at\nmodify\nsuggestive_of\n")
    embed = {"model_name": str(bert), "max_length": 512}
    config = {
        "dataset_reader": {"max_span_width": 4, "token_indexers": {"bert": embed}},
        "model": {
            "type": "dygie", "embedder": {"token_embedders": {"bert": embed}}, "initializer": {}, "module_initializer": {},
            "modules": {"ner": {}, "coref": {"spans_per_word": 0.3, "max_antecedents": 10},
                        "relation": {"spans_per_word": 0.5},
                        "events": {"trigger_spans_per_word": 0.3, "argument_spans_per_word": 0.8,
                                   "loss_weights": {"trigger": 1.0, "arguments": 1.0}}},
            "feature_size": 8, "max_span_width": 4, "target_task": "relation",
            "feedforward_params": {"num_layers": 1, "hidden_dims": 16, "dropout": 0.0},
            "loss_weights": {"ner": 1.0, "relation": 1.0, "coref": 0.0, "events": 0.0},
        },
    }
    (model_dir / "config.json").write_text(json.dumps(config))

    # The package's own classes, as RadGraph.__init__ builds them, with random weights.
    from radgraph.allennlp.data import Vocabulary
    from radgraph.allennlp.modules import text_field_embedders, token_embedders
    from radgraph.dygie.models import dygie

    vocab = Vocabulary.from_files(str(voc))
    embedder = text_field_embedders.BasicTextFieldEmbedder(
        {"bert": token_embedders.PretrainedTransformerMismatchedEmbedder(model_name=str(bert), max_length=512)})
    model_cfg = {k: v for k, v in config["model"].items() if k not in ("type", "embedder", "initializer", "module_initializer")}
    model = dygie.DyGIE(vocab=vocab, embedder=embedder, **model_cfg)
    torch.save(model.state_dict(), model_dir / "weights.th")


if __name__ == "__main__":
    main(sys.argv[1])
