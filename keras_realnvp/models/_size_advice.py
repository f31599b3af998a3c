"""How a size-limit error (`keras_realnvp.models.size_limits`) names the setting to blame.

Each setting is bisected down to the largest value that fits with the others unchanged;
the setting that can fix the excess alone and is furthest above its ordinary value is named
first, the others that could follow.
"""


def largest_fitting(count, values, name, minimum, limit):
    """The largest `values[name]` in `[minimum, values[name]]` with `count(values) <= limit`, or None."""
    low, high = minimum, values[name]
    if count({**values, name: low}) > limit:
        return None
    while low < high:  # every count here is non-decreasing in every setting: bisect
        middle = (low + high + 1) // 2
        if count({**values, name: middle}) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


# Ordinary values of each setting (RealNVP's and RealNVP2D's defaults; any conditioning; a
# 32x32 image). The setting furthest above its ordinary value is the one an error blames.
_ORDINARY = {
    "filters": 64,
    "num_blocks": 8,
    "num_scales": 2,
    "label_dim": 1,
    "channels": 3,
    "pixels": 32 * 32,
    "dim": 2,
    "num_couplings": 6,
}
# RealNVP2D's ordinary depth differs from RealNVP's: one hidden layer after the first (`num_blocks`).
VECTOR_ORDINARY = {"num_blocks": 1}


def excess(what, total, limit, constant, candidates, ordinary=None):
    """The message for `total` over `limit`.

    `constant` names the limit (`module.NAME`). `candidates`: `(key in _ORDINARY, setting as
    "name=value", value, advice or None)`, where `advice` says how far that setting alone must
    come down. The setting that can fix it alone and is furthest above its ordinary value is named first, the others
    that could fix it alone follow. `ordinary` replaces some of `_ORDINARY` (`VECTOR_ORDINARY` for `RealNVP2D`).
    """
    ordinary = {**_ORDINARY, **(ordinary or {})}
    text = f"{total:,} {what}, more than the limit of {limit:,} ({constant})"
    fixable = sorted(
        ((value / ordinary[key], shown, advice) for key, shown, value, advice in candidates if advice),
        key=lambda item: item[0],
        reverse=True,
    )
    if not fixable:
        names = ", ".join(shown for _, shown, _, _ in candidates)
        return f"{names} give {text}; no one of these settings alone brings it under the limit."
    (_, shown, advice), others = fixable[0], [advice for _, _, advice in fixable[1:]]
    alternatives = f" (or {', or '.join(others)})" if others else ""
    return f"{shown} gives {text}; with the other settings as they are, {advice}{alternatives}."


def blame(count, values, limit, names):
    """Candidates for `excess`: each of `names` (`(key, shown)`) bisected down to what fits."""
    minimums = {"num_blocks": 0, "label_dim": 0, "num_couplings": 2, "dim": 2}
    candidates = []
    for key, shown in names:
        if values[key]:
            most = largest_fitting(count, values, key, minimums.get(key, 1), limit)
            label = "image channels" if key == "channels" else key
            advice = None if most is None else f"{label} can be at most {most:,}"
            if key == "label_dim" and most == 0:
                advice = "only an unconditional model (label_dim=None) fits"
            candidates.append((key, shown, values[key], advice))
    return candidates
