"""Screening mammography: breast density (BI-RADS a–d), lesion marks with scores, an exam score 1–10."""
