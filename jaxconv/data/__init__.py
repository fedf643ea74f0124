"""Text data for the convolution models: read, tokenize, index, split, batch.

The usual path from files to fixed-shape batches::

    ds = load_sentence_dataset("mr", root)                        # or load_files("mine.tsv"), load_named_source(...)
    tok = get_tokenizer(ds.extras["tokenizer"])                   # Kim (2014)'s cleaning
    vocab = Vocab.build(tok(t) for t in ds.train.texts)           # <pad>=0, <unk>=1
    ids = encode_texts(ds.train.texts, vocab, tok)                # list[list[int]]
    folds = stratified_kfold(ds.train.labels, 10, seed=0)         # MR has no test split
    batches = BucketedBatches(ids, ds.train.labels, batch_size=50, pad_left=4, pad_right=4, min_length=5)
    for batch in batches.epoch(epoch):                            # tokens: int32 (50, bucket_length)
        ...

Nothing here imports JAX; arrays are NumPy.

>>> ds = synthetic_dataset(100, seed=0)
>>> vocab = Vocab.build(whitespace_tokenize(t) for t in ds.train.texts)
>>> bb = BucketedBatches(encode_texts(ds.train.texts, vocab, "whitespace"), ds.train.labels, batch_size=16)
>>> b = next(iter(bb.epoch(0)))
>>> b.tokens.dtype, b.tokens.shape[0], b.tokens.shape[1] in bb.bucket_lengths
(dtype('int32'), 16, True)
"""

from jaxconv.data.batching import Batch, BucketedBatches, default_bucket_lengths
from jaxconv.data.files import FORMATS, TEXT_FIELDS, Examples, detect_format, load_files, read_examples
from jaxconv.data.lines import ON_ERROR_CHOICES, LineProblems, decode_lines
from jaxconv.data.readers import (
    SENTENCE_DATASETS,
    LabeledText,
    TextDataset,
    canonical_name,
    default_sentence_root,
    load_sentence_dataset,
    load_text_splits,
    read_labeled_lines,
)
from jaxconv.data.sources import BUILTIN_SOURCES, load_hf_dataset, load_named_source, load_tfds_dataset
from jaxconv.data.sst import (
    SSTTrees,
    default_sst_root,
    read_sst_trees,
    sst_phrase_dataset,
    sst_text,
    sst_tree_files,
    sst_trees_present,
)
from jaxconv.data.splits import holdout_dev, stratified_kfold, stratified_split
from jaxconv.data.synthetic import SyntheticCorpus, make_planted_motif_corpus, synthetic_dataset
from jaxconv.data.tokenize import (
    TOKENIZERS,
    clean_str_kim,
    clean_str_sst,
    get_tokenizer,
    kim_tokenize,
    sst_tokenize,
    whitespace_tokenize,
    lower_tokenize,
    keras_tokenizer,
    char_tokenize,
    byte_tokenize,
    detokenize,
)
from jaxconv.data.vocab import ALPHABETS, BYTES, ZHANG_ALPHABET, SourceVocab, Vocab, encode_texts

__all__ = [
    # readers
    "LabeledText", "TextDataset", "read_labeled_lines", "load_text_splits", "load_sentence_dataset",
    "default_sentence_root", "SENTENCE_DATASETS", "canonical_name",
    # your own files (label_text, tsv, csv, jsonl), decoding and on_error
    "load_files", "read_examples", "detect_format", "Examples", "FORMATS", "TEXT_FIELDS", "decode_lines",
    "LineProblems", "ON_ERROR_CHOICES",
    # the sentiment treebank's trees
    "SSTTrees", "read_sst_trees", "sst_phrase_dataset", "default_sst_root", "sst_tree_files", "sst_trees_present",
    "sst_text",
    # tokenize
    "clean_str_kim", "clean_str_sst", "kim_tokenize", "sst_tokenize", "whitespace_tokenize", "get_tokenizer",
    "lower_tokenize", "keras_tokenizer", "TOKENIZERS", "char_tokenize", "byte_tokenize", "detokenize",
    # vocab
    "Vocab", "SourceVocab", "encode_texts", "BYTES", "ZHANG_ALPHABET", "ALPHABETS",
    # splits
    "stratified_kfold", "holdout_dev", "stratified_split",
    # batching
    "Batch", "BucketedBatches", "default_bucket_lengths",
    # synthetic
    "SyntheticCorpus", "make_planted_motif_corpus", "synthetic_dataset",
    # sources
    "load_hf_dataset", "load_tfds_dataset", "load_named_source", "BUILTIN_SOURCES",
]
