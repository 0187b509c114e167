"""OpenAPI schema tweaks."""


def paths_without_trailing_slash(result, generator, request, public):
    """Routes answer with or without a trailing slash; document the contract form, without it."""
    result["paths"] = {(path.rstrip("/") or "/"): spec for path, spec in result["paths"].items()}
    return result
