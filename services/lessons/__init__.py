"""Lessons: field reports (observations), after action reviews with due dates, review, search, digests."""
