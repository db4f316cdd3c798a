"""The launch policy: which calls may get a drone, and why.

This is the rule that keeps drones from becoming routine surveillance: a drone flies
only for the grades and categories the force has published, never for an excluded
category (such as lawful protest), and every decision carries its reason.
"""
from __future__ import annotations

from dataclasses import dataclass

from dfr_intake.calls import Call


@dataclass(frozen=True)
class LaunchPolicy:
    eligible_grades: frozenset[str]
    eligible_categories: frozenset[str]
    excluded_categories: frozenset[str]

    def __post_init__(self):
        both = self.eligible_categories & self.excluded_categories
        if both:
            raise ValueError(f"categories both eligible and excluded: {', '.join(sorted(both))}")

    def decide(self, call: Call) -> tuple[bool, str]:
        if call.category in self.excluded_categories:
            return False, f"category '{call.category}' is excluded from drone response by policy"
        if call.grade not in self.eligible_grades:
            return False, (f"grade {call.grade} is not eligible for a drone "
                           f"(eligible: {', '.join(sorted(self.eligible_grades))})")
        if call.category not in self.eligible_categories:
            return False, f"category '{call.category}' is not on the list of categories a drone may attend"
        return True, f"grade {call.grade} {call.category}: eligible for a drone"
