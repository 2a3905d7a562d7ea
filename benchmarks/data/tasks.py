"""The tasks each suite knows by name: class counts, VTAB groups and the aliases other codebases use."""
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    name: str
    num_classes: int
    group: str
    aliases: tuple = ()


def _table(group: str, entries) -> dict:
    return {name: TaskInfo(name, n, group, tuple(aliases)) for name, n, *aliases in entries}


# VTAB-1k with NOAH's folder names (the layout most users have), the aliases other loaders use.
VTAB1K = {
    **_table("natural", [
        ("cifar", 100, "cifar100"), ("caltech101", 102), ("dtd", 47), ("oxford_flowers102", 102, "flowers102"),
        ("oxford_iiit_pet", 37, "oxford_pet", "pets"), ("svhn", 10), ("sun397", 397)]),
    **_table("specialized", [
        ("patch_camelyon", 2, "camelyon", "pcam"), ("eurosat", 10), ("resisc45", 45),
        ("diabetic_retinopathy", 5, "retinopathy", "diabetic_retinopathy_detection")]),
    **_table("structured", [
        ("clevr_count", 8, "clevr_count_all"), ("clevr_dist", 6, "clevr_closest_object_distance"),
        ("dmlab", 6), ("kitti", 4, "kitti_dist", "kitti_closest_vehicle_distance"),
        ("dsprites_loc", 16, "dsprites_location", "dsprites_label_x_position"),
        ("dsprites_ori", 16, "dsprites_orientation", "dsprites_label_orientation"),
        ("smallnorb_azi", 18, "smallnorb_azimuth", "smallnorb_label_azimuth"),
        ("smallnorb_ele", 9, "smallnorb_elevation", "smallnorb_label_elevation")]),
}
VTAB_GROUPS = ("natural", "specialized", "structured")
# VTAB-1k's test-set sizes (Zhai et al. 2019, the task_adaptation splits NOAH's test.txt lists; 387,904 in all);
# every task trains on 1,000 images (train800 + val200). perf/vtab_full.py generates tasks of these sizes.
VTAB1K_TEST_SIZES = {
    "cifar": 10_000, "caltech101": 6_084, "dtd": 1_880, "oxford_flowers102": 6_149, "oxford_iiit_pet": 3_669,
    "svhn": 26_032, "sun397": 21_750,
    "patch_camelyon": 32_768, "eurosat": 5_400, "resisc45": 6_300, "diabetic_retinopathy": 42_670,
    "clevr_count": 15_000, "clevr_dist": 15_000, "dmlab": 22_735, "kitti": 711, "dsprites_loc": 73_728,
    "dsprites_ori": 73_728, "smallnorb_azi": 12_150, "smallnorb_ele": 12_150}
VTAB1K_TRAIN_SPLITS = {"train800": 800, "val200": 200}

# VPT's FGVC suite: folder name, classes, and where its json keys point (relative to the task folder).
FGVC = _table("fgvc", [("CUB_200_2011", 200, "cub"), ("nabirds", 555), ("OxfordFlowers", 102, "oxford_flowers"),
                       ("StanfordDogs", 120, "stanford_dogs"), ("StanfordCars", 196, "stanford_cars")])
FGVC_IMAGE_DIRS = {"CUB_200_2011": "images", "nabirds": "images", "OxfordFlowers": "",
                   "StanfordDogs": "Images", "StanfordCars": ""}

# The AuroRA paper's (FourierFT's) 8 tasks, with their train / val / test sizes.
PAPER = _table("paper", [("pets", 37), ("cars", 196), ("cifar10", 10), ("dtd", 47), ("eurosat", 10),
                         ("fgvc_aircraft", 100), ("resisc45", 45), ("cifar100", 100)])
PAPER_SPLITS = {"pets": (3312, 368, 3669), "cars": (7329, 815, 8041), "cifar10": (45000, 5000, 10000),
                "dtd": (4060, 452, 1128), "eurosat": (16200, 5400, 5400), "fgvc_aircraft": (3000, 334, 3333),
                "resisc45": (18900, 6300, 6300), "cifar100": (45000, 5000, 10000)}

SUITES = {"vtab": VTAB1K, "fgvc": FGVC, "paper": PAPER}


def lookup(suite: str, name: str):
    """The TaskInfo for `name` or one of its aliases in `suite`, or None for a task the suite does not know."""
    for info in SUITES.get(suite, {}).values():
        if name == info.name or name in info.aliases:
            return info
    return None
