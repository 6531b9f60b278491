"""Built-in token scorers: quality Q, consistency C, their weighted combination, shaping and metric rewards.

Each scorer is a picklable callable class with a ``__name__``, usable in ``token_reward_funcs``.
"""

from trl_token_ext.scorers._common import TokenScorer
from trl_token_ext.scorers.combine import WeightedTokenReward
from trl_token_ext.scorers.consistency import ReferenceConsistency, RepetitionConsistency, SelfConsistency, jaccard
from trl_token_ext.scorers.distill import TeacherDistillReward
from trl_token_ext.scorers.embedding import EmbeddingConsistency
from trl_token_ext.scorers.lexicon import LexiconQuality
from trl_token_ext.scorers.metrics import BatchMetric, MetricReward, load_metric
from trl_token_ext.scorers.online_prm import OnlineImplicitPRM
from trl_token_ext.scorers.quality import ImplicitPRMQuality, LogProbQuality, TokenClassifierQuality
from trl_token_ext.scorers.shaping import PotentialShaping
from trl_token_ext.scorers.step_prm import StepPRMReward
from trl_token_ext.scorers.steps import StepReward, split_steps

__all__ = [
    "BatchMetric",
    "EmbeddingConsistency",
    "ImplicitPRMQuality",
    "LexiconQuality",
    "LogProbQuality",
    "MetricReward",
    "OnlineImplicitPRM",
    "PotentialShaping",
    "ReferenceConsistency",
    "RepetitionConsistency",
    "SelfConsistency",
    "StepPRMReward",
    "StepReward",
    "TeacherDistillReward",
    "TokenClassifierQuality",
    "TokenScorer",
    "WeightedTokenReward",
    "jaccard",
    "load_metric",
    "split_steps",
]
