"""Judging: the oracle's transition rules, its judgements and the verdicts scenarios assert on."""
