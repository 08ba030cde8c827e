"""Tabular CPU plugins (sepsis, ed_flow, or_planning, pharmacy) behind one small interface."""
