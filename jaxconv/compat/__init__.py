"""Constructors that speak other frameworks' argument names and build jaxconv modules."""
