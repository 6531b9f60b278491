"""Offline `evaluate` module: BLEU in [0, 1] with the Hub "bleu" outputs, computed by the `sacrebleu` package.

Tokenization is sacrebleu's "13a" (as the Hub metric's default tokenizer); ``smooth=True`` uses add-one smoothing.
"""

import datasets
import evaluate

_DESCRIPTION = "BLEU (0-1) computed by sacrebleu. Offline copy used by trl_token_ext when the Hub is unreachable."


class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Papineni et al., 2002. BLEU: a Method for Automatic Evaluation of Machine Translation.",
            inputs_description="predictions: list of str; references: list of str or list of list of str",
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references, max_order=4, smooth=False):
        import sacrebleu

        if references and isinstance(references[0], str):
            references = [[ref] for ref in references]
        count = max(len(refs) for refs in references)
        transposed = [[refs[i] if i < len(refs) else None for refs in references] for i in range(count)]
        bleu = sacrebleu.BLEU(
            max_ngram_order=max_order,
            smooth_method="add-k" if smooth else "none",
            smooth_value=1 if smooth else None,
            tokenize="13a",
        )
        output = bleu.corpus_score(predictions, transposed)
        return {
            "bleu": output.score / 100.0,
            "precisions": [p / 100.0 for p in output.precisions],
            "brevity_penalty": output.bp,
            "length_ratio": output.sys_len / max(output.ref_len, 1),
            "translation_length": output.sys_len,
            "reference_length": output.ref_len,
        }
