"""Signoff: LLM agents that pause for a human's sign-off, serverless on AWS Lambda."""

from signoff.agent import Agent
from signoff.tools import Tool, UserInputField, tool

__all__ = ["Agent", "Tool", "UserInputField", "tool"]
