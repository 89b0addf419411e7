"""Figures. Functions here draw arrays and curves computed elsewhere; they never compute metrics."""
