"""Federated SQL aggregate jobs: analysis, per-site fragments, combination and DP release.

The pure core of job kind 1 (see DESIGN.md): :func:`analyse` checks an operator's SQL
against an asset's schema and describes its column uses for the policy engine;
:func:`partial_plan` turns an analysed query and the policy's parameters into the
fragment every site runs; :func:`combine` merges the sites' partial aggregates;
:func:`release` thresholds groups and adds OpenDP noise before anything leaves the
gateway.
"""

from policies.jobs.aggregates import AggregateName, OutputColumn
from policies.jobs.combine import CombinedGroup, CombineError, combine
from policies.jobs.errors import AnalysisError, JobError, PlanError, Refusal, ReleaseError
from policies.jobs.mechanisms import Noised, NoiseSource, OpenDPNoise, Thresholded
from policies.jobs.noise import Cell, Charge, Release, normal_key
from policies.jobs.plans import PlanCache
from policies.jobs.query import GroupKey
from policies.jobs.release import SiteRelease, finish, release, site_release
from policies.jobs.rewrite import (
    UNITS,
    Partial,
    PartialPlan,
    PlanKey,
    PlannedOutput,
    RowValue,
    partial_plan,
)
from policies.jobs.schema import AssetSchema, ColumnSpec, Kind
from policies.jobs.sql_analysis import Analysis, analyse

__all__ = [
    "UNITS",
    "AggregateName",
    "Analysis",
    "AnalysisError",
    "AssetSchema",
    "Cell",
    "Charge",
    "ColumnSpec",
    "CombineError",
    "CombinedGroup",
    "GroupKey",
    "JobError",
    "Kind",
    "NoiseSource",
    "Noised",
    "OpenDPNoise",
    "OutputColumn",
    "Partial",
    "PartialPlan",
    "PlanCache",
    "PlanError",
    "PlanKey",
    "PlannedOutput",
    "Refusal",
    "Release",
    "ReleaseError",
    "RowValue",
    "SiteRelease",
    "Thresholded",
    "analyse",
    "combine",
    "finish",
    "normal_key",
    "partial_plan",
    "release",
    "site_release",
]
