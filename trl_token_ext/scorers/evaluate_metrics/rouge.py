"""Offline `evaluate` module: ROUGE backed by Google's `rouge-score` package (same outputs as the Hub's "rouge")."""

import datasets
import evaluate

_DESCRIPTION = "ROUGE F-measures (0-1) (rouge-score). Offline copy used by trl_token_ext when the Hub is unreachable."


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
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
        self, predictions, references, rouge_types=None, use_aggregator=True, use_stemmer=False, tokenizer=None
    ):
        from rouge_score import rouge_scorer, scoring

        rouge_types = rouge_types or ["rouge1", "rouge2", "rougeL", "rougeLsum"]
        scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer, tokenizer=tokenizer)
        multi = bool(references) and isinstance(references[0], list)
        scores = []
        for ref, pred in zip(references, predictions):
            scores.append(scorer.score_multi(ref, pred) if multi else scorer.score(ref, pred))
        if use_aggregator:
            aggregator = scoring.BootstrapAggregator()
            for score in scores:
                aggregator.add_scores(score)
            result = aggregator.aggregate()
            return {key: result[key].mid.fmeasure for key in result}
        return {key: [score[key].fmeasure for score in scores] for key in rouge_types}
