"""Compound scaling: reference rounding, published coefficient tables, phi scaling, coefficient search."""
