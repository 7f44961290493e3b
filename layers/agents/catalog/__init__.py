"""This deployment's agents. Add yours to AGENTS."""

from catalog.data_manager import data_manager

AGENTS = [data_manager]
