"""mcp-profiles: an MCP server that keeps user and assistant profiles."""

__version__ = "0.1.0"
__all__ = ["__version__"]
