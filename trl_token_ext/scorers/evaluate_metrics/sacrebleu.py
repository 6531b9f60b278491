"""Offline `evaluate` module: SacreBLEU backed by the `sacrebleu` package (same outputs as the Hub's "sacrebleu")."""

import datasets
import evaluate

_DESCRIPTION = "BLEU computed by sacrebleu (0-100). Offline copy used by trl_token_ext when the Hub is unreachable."


class Sacrebleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, 2018. A Call for Clarity in Reporting BLEU Scores.",
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
        smooth_method="exp",
        smooth_value=None,
        lowercase=False,
        tokenize=None,
        use_effective_order=False,
    ):
        import sacrebleu

        if references and isinstance(references[0], str):
            references = [[ref] for ref in references]
        count = len(references[0])
        if any(len(refs) != count for refs in references):
            raise ValueError("sacrebleu requires the same number of references for each prediction")
        transposed = [[refs[i] for refs in references] for i in range(count)]
        kwargs = {} if tokenize is None else {"tokenize": tokenize}
        output = sacrebleu.corpus_bleu(
            predictions,
            transposed,
            smooth_method=smooth_method,
            smooth_value=smooth_value,
            force=False,
            lowercase=lowercase,
            use_effective_order=use_effective_order,
            **kwargs,
        )
        return {
            "score": output.score,
            "counts": output.counts,
            "totals": output.totals,
            "precisions": output.precisions,
            "bp": output.bp,
            "sys_len": output.sys_len,
            "ref_len": output.ref_len,
        }
