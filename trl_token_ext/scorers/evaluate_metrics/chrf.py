"""Offline `evaluate` module: chrF / chrF++ backed by the `sacrebleu` package (same outputs as the Hub's "chrf")."""

import datasets
import evaluate

_DESCRIPTION = "chrF (0-100) computed by sacrebleu. Offline copy used by trl_token_ext when the Hub is unreachable."


class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Popović, 2015. chrF: character n-gram F-score for automatic MT evaluation.",
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

    def _compute(
        self,
        predictions,
        references,
        char_order=6,
        word_order=0,
        beta=2,
        lowercase=False,
        whitespace=False,
        eps_smoothing=False,
    ):
        from sacrebleu import CHRF

        if references and isinstance(references[0], str):
            references = [[ref] for ref in references]
        count = len(references[0])
        transposed = [[refs[i] for refs in references] for i in range(count)]
        scorer = CHRF(
            char_order=char_order,
            word_order=word_order,
            beta=beta,
            lowercase=lowercase,
            whitespace=whitespace,
            eps_smoothing=eps_smoothing,
        )
        output = scorer.corpus_score(predictions, transposed)
        return {
            "score": output.score,
            "char_order": output.char_order,
            "word_order": output.word_order,
            "beta": output.beta,
        }
