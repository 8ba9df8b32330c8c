"""The few kustomize features k8s/ uses, for rendering where neither kustomize
nor kubectl is installed: `resources` (files and directories), `patches`
given inline as JSON 6902 operations (add, replace, remove) with a target by
kind and name, and `images` (name, newName, newTag). Anything else in a kustomization is refused, so a new feature
fails loudly here instead of rendering wrong; the tests check this renderer
against real kustomize wherever that is installed."""

from pathlib import Path

import yaml

KNOWN_KEYS = {"apiVersion", "kind", "resources", "patches", "images"}


def build(directory: Path) -> list[dict]:
    """The documents `kustomize build directory` would print (in file order)."""
    directory = Path(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN_KEYS
    if unknown:
        raise NotImplementedError(f"{directory}: kustomization keys {sorted(unknown)}")
    documents = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            documents += build(path)
        else:
            documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    ids = [identity(doc) for doc in documents]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"{directory}: resources defined twice: {sorted(duplicates)}")
    for patch in kustomization.get("patches", []):
        if set(patch) - {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
            raise NotImplementedError(f"{directory}: patch {patch}")
        operations = yaml.safe_load(patch["patch"])
        if not isinstance(operations, list):
            raise NotImplementedError(f"{directory}: only JSON 6902 patches: {patch}")
        targets = [doc for doc in documents if matches(doc, patch["target"])]
        if not targets:
            raise ValueError(f"{directory}: patch matches nothing: {patch['target']}")
        for doc in targets:
            for operation in operations:
                apply(doc, operation)
    for image in kustomization.get("images", []):
        if set(image) - {"name", "newName", "newTag"}:
            raise NotImplementedError(f"{directory}: image {image}")
        for doc in documents:
            for container in containers(doc):
                name, tag = split_image(container["image"])
                if name == image["name"]:
                    name = image.get("newName", name)
                    container["image"] = f"{name}:{image['newTag']}" if "newTag" in image else f"{name}{tag}"
    return documents


def containers(doc: dict) -> list[dict]:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    return pod.get("initContainers", []) + pod.get("containers", [])


def split_image(image: str) -> tuple[str, str]:
    """harsha-mesh:0.1.0 -> (harsha-mesh, :0.1.0); a registry's port is no tag."""
    for mark in ("@", ":"):
        head, sep, tail = image.rpartition(mark)
        if sep and "/" not in tail:
            return head, sep + tail
    return image, ""


def identity(doc: dict) -> tuple:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


def matches(doc: dict, target: dict) -> bool:
    return all({"kind": doc["kind"], "name": doc["metadata"]["name"]}[key] == value for key, value in target.items())


def apply(doc: dict, operation: dict) -> None:
    op, path = operation["op"], operation["path"]
    if op not in {"add", "replace", "remove"}:
        raise NotImplementedError(f"JSON patch op {op}")
    *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        if op == "add":
            node.insert(len(node) if last == "-" else int(last), operation["value"])
            return
        index = int(last)
        if op == "remove":
            del node[index]
        else:
            node[index] = operation["value"]
        return
    if op != "add" and last not in node:
        raise KeyError(f"{path}: not in {identity(doc)}")
    if op == "remove":
        del node[last]
    else:
        node[last] = operation["value"]
