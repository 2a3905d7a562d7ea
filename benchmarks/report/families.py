"""Method families for ordering rows and styling plots: a family is a set of registered method names
(a record's config.method.name); each family has a colour map and a marker, and each variant in it a shade."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    label: str
    cmap: str
    marker: str


# Row and legend order: references first, then adapters by kind.
FAMILIES = {
    "full": Family("full fine-tuning", "Greys", "s"),
    "linear": Family("linear probe", "Greys", "v"),
    "bitfit": Family("BitFit", "Purples", "P"),
    "lora": Family("LoRA", "Blues", "o"),
    "peft": Family("peft baselines", "Greens", "^"),
    "aurora": Family("AuroRA", "Oranges", "D"),
}
METHOD_FAMILY = {"full": "full", "linear": "linear", "bitfit": "bitfit", "lora": "lora", "aurora": "aurora",
                 "peft-lora": "peft", "dora": "peft", "fourierft": "peft", "vera": "peft"}
# A method registered after this table was written gets a family of its own, styled from these.
SPARE = [Family("", "RdPu", "X"), Family("", "YlOrBr", "p"), Family("", "BuGn", "h"), Family("", "PuBu", "*")]


def family_of(method_name: str) -> str:
    return METHOD_FAMILY.get(method_name, method_name)


def family_rank(family: str) -> tuple:
    order = list(FAMILIES)
    return (order.index(family), "") if family in FAMILIES else (len(order), family)


def styles(method_families: dict) -> dict:
    """{variant: (colour, marker)} for {variant: family}, variants in the order given (shades follow it):
    one colour map and marker per family, darker shades for later variants."""
    import matplotlib

    spare = iter(SPARE)
    fams = {f: FAMILIES.get(f) or next(spare, SPARE[-1]) for f in dict.fromkeys(method_families.values())}
    out = {}
    for fam, style in fams.items():
        members = [v for v, f in method_families.items() if f == fam]
        cmap = matplotlib.colormaps[style.cmap]
        if fam == "full":
            shades = [0.95] * len(members)
        elif fam == "linear":
            shades = [0.55] * len(members)
        else:
            k = len(members)
            shades = [0.75] if k == 1 else [0.45 + 0.5 * i / (k - 1) for i in range(k)]
        for v, shade in zip(members, shades):
            out[v] = (cmap(shade), style.marker)
    return out


def family_label(family: str) -> str:
    return FAMILIES[family].label if family in FAMILIES else family
