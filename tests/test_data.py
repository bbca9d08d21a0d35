import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED, tiny_config
from PIL import Image

from personcut.train.data import IGNORE, build_dataset, read_exclude, skipped_files
from personcut.train.data.coco import CocoPersonDataset
from personcut.train.data.folders import FolderDataset
from personcut.train.data.transforms import CopyPaste, EvalTransform, TrainTransform, eval_collate


@pytest.fixture()
def coco_pack(tmp_path):
    """Four images: a polygon person, an RLE person plus a crowd, no person, and a small
    person, with exact expected masks."""
    from pycocotools import mask as mask_utils

    images = tmp_path / "images"
    images.mkdir()
    h, w = 20, 30
    for i in range(1, 5):
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(images / f"{i:03d}.jpg")
    rle_mask = np.zeros((h, w), np.uint8, order="F")
    rle_mask[10:15, 20:28] = 1
    rle = mask_utils.encode(np.asfortranarray(rle_mask))
    rle["counts"] = rle["counts"].decode()
    crowd_mask = np.zeros((h, w), np.uint8)
    crowd_mask[0:5, 0:10] = 1
    crowd_rle = mask_utils.encode(np.asfortranarray(crowd_mask))
    crowd_rle["counts"] = crowd_rle["counts"].decode()
    anns = [
        # polygon covering the pixel block x 2..7, y 3..8 (pycocotools rasterises polygons
        # with pixel centres; the expectation below was derived from that rule by hand)
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "area": 36.0,
            "segmentation": [[2, 3, 8, 3, 8, 9, 2, 9]],
            "bbox": [2, 3, 6, 6],
        },
        {
            "id": 2,
            "image_id": 2,
            "category_id": 1,
            "iscrowd": 0,
            "area": 40.0,
            "segmentation": rle,
            "bbox": [20, 10, 8, 5],
        },
        {
            "id": 3,
            "image_id": 2,
            "category_id": 1,
            "iscrowd": 1,
            "area": 50.0,
            "segmentation": crowd_rle,
            "bbox": [0, 0, 10, 5],
        },
        {
            "id": 4,
            "image_id": 4,
            "category_id": 1,
            "iscrowd": 0,
            "area": 4.0,
            "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]],
            "bbox": [0, 0, 2, 2],
        },
        # another category never enters the mask
        {
            "id": 5,
            "image_id": 3,
            "category_id": 2,
            "iscrowd": 0,
            "area": 100.0,
            "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]],
            "bbox": [0, 0, 10, 10],
        },
    ]
    data = {
        "images": [
            {"id": i, "file_name": f"{i:03d}.jpg", "height": h, "width": w} for i in range(1, 5)
        ],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
    }
    ann_dir = tmp_path / "annotations"
    ann_dir.mkdir()
    path = ann_dir / "instances_tiny.json"
    path.write_text(json.dumps(data))
    return path, images, rle_mask, crowd_mask


def test_coco_masks_are_exact(coco_pack):
    path, images, rle_mask, crowd_mask = coco_pack
    ds = CocoPersonDataset(path, images)
    assert len(ds) == 4
    m1 = ds.load(0)[1]
    expected = np.zeros_like(m1)
    expected[3:9, 2:8] = 1
    assert np.array_equal(m1, expected)
    m2 = ds.load(1)[1]
    assert np.array_equal(m2 == 1, rle_mask == 1)
    assert np.array_equal(m2 == IGNORE, crowd_mask == 1)  # crowd ignored by default
    assert not ds.load(2)[1].any()  # dog only: no person
    as_person = CocoPersonDataset(path, images, crowd="person").load(1)[1]
    assert np.array_equal(as_person, ((rle_mask + crowd_mask) > 0).astype(np.uint8))


def test_coco_options_for_negatives_and_small_people(coco_pack):
    path, images, *_ = coco_pack
    assert len(CocoPersonDataset(path, images, keep_empty=False)) == 3  # images 1, 2 and 4
    ds = CocoPersonDataset(path, images, keep_empty=False, min_person_area=10)
    assert len(ds) == 3
    assert not ds.load(ds.ids.index(4))[1].any()  # the 4-pixel person is dropped


def test_coco_source_forms(coco_pack, tmp_path):
    path, images, *_ = coco_pack
    assert len(build_dataset([str(path.parent.parent)])) == 4  # folder with annotations/
    assert len(build_dataset([f"{path}:{images}"])) == 4
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        build_dataset([f"{bad}:{images}"])


def test_folder_pairs_by_stem_and_skips_bad_pairs(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    img = Image.fromarray(np.zeros((10, 12, 3), np.uint8))
    img.save(tmp_path / "images" / "a.jpg")
    img.save(tmp_path / "images" / "b.webp")
    img.save(tmp_path / "images" / "nomask.png")
    img.save(tmp_path / "images" / "wrongsize.png")
    mask = np.zeros((10, 12), np.uint8)
    mask[:, :6] = 127
    mask[:, 6:] = 128
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "b.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "masks" / "wrongsize.png")
    ds = FolderDataset(tmp_path)
    assert [p[0].name for p in ds.items] == ["a.jpg", "b.webp"]
    assert len(ds.skipped) == 2 and any("wrongsize" in s for s in ds.skipped)
    _, m, group = ds[0]
    assert m[:, :6].max() == 0 and m[:, 6:].min() == 1  # thresholded at 128
    assert group == tmp_path.name


def test_one_source_of_a_folder_can_be_weighed_by_listing_it_again(folder_data):
    from personcut.train.evaluation import dataset_groups

    ds = build_dataset([str(folder_data), f"{folder_data}:alpha", f"{folder_data}:alpha"])
    assert len(ds) == 12 + 6 + 6
    assert dataset_groups(ds) == ["alpha", "beta"]
    only = build_dataset([f"{folder_data}:alpha"])
    assert {only.items[i][2] for i in range(len(only))} == {"alpha"}
    with pytest.raises(FileNotFoundError, match="start with gamma-"):
        build_dataset([f"{folder_data}:gamma"])
    with pytest.raises(FileNotFoundError, match="FOLDER:SOURCE"):
        build_dataset([f"{folder_data}/nothing-here:alpha"])


def test_a_source_reports_its_own_skipped_files_once(tmp_path, folder_data):
    import shutil

    root = tmp_path / "pack"
    shutil.copytree(folder_data, root)
    for stem in ("alpha-900", "beta-901"):  # images with no mask
        shutil.copy(root / "images" / "alpha-001.png", root / "images" / f"{stem}.png")
    ds = build_dataset([f"{root}:alpha", f"{root}:alpha"])
    assert [Path(s.split(": ")[0]).name for s in skipped_files(ds)] == ["alpha-900.png"]
    everything = build_dataset([str(root), str(root)])
    assert len(skipped_files(everything)) == 2


def test_mixed_sources_and_groups(folder_data, coco_pack):
    path, images, *_ = coco_pack
    ds = build_dataset([str(folder_data), f"{path}:{images}"])
    assert len(ds) == 16
    from personcut.train.evaluation import dataset_groups

    assert dataset_groups(ds) == ["alpha", "beta", "coco"]


def test_images_named_in_an_exclude_list_are_left_out_of_every_source(
    folder_data, coco_pack, tmp_path
):
    path, images, *_ = coco_pack
    listing = tmp_path / "label_errors.txt"
    listing.write_text("# wrong masks\nalpha-001  # a stray stroke\n\n002\n")
    exclude = read_exclude(listing)
    assert exclude == {"alpha-001", "002"}
    sources = [str(folder_data), f"{folder_data}:alpha", f"{path}:{images}"]
    ds = build_dataset(sources, exclude=exclude)
    assert len(ds) == (12 - 1) + (6 - 1) + (4 - 1)  # each copy of a weighed source loses it
    names = {Path(item[0]).stem for part in ds.datasets for item in part.items}
    assert "alpha-001" not in names and "002" not in names and "alpha-003" in names
    with pytest.raises(ValueError, match="match no image.*alpha-999"):
        build_dataset(sources, exclude=frozenset({"alpha-001", "alpha-999"}))
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        read_exclude(tmp_path / "nothing.txt")


def test_train_transform_keeps_image_and_mask_aligned():
    image = np.zeros((120, 100, 3), np.uint8)
    mask = np.zeros((120, 100), np.uint8)
    image[30:70, 40:80] = 255
    mask[30:70, 40:80] = 1
    transform = TrainTransform(64, min_scale=0.5, rotate_degrees=10)
    torch.manual_seed(0)
    for _ in range(10):
        img, msk = transform(image, mask)
        assert img.shape == (3, 64, 64) and msk.shape == (1, 64, 64)
        bright = img.mean(0) > 0.5
        person = msk[0] == 1
        if person.sum() < 20:
            continue
        iou = (bright & person).sum() / (bright | person).sum()
        assert iou > 0.8  # a 3-pixel shift of the 20-pixel square would give 0.74


def test_copy_paste_moves_the_person_with_its_mask(tmp_path):
    backgrounds = tmp_path / "bg"
    backgrounds.mkdir()
    Image.fromarray(np.full((50, 70, 3), (0, 0, 255), np.uint8)).save(backgrounds / "blue.png")
    image = torch.zeros(3, 40, 40, dtype=torch.uint8)
    image[0, 10:30, 10:30] = 255  # a red "person"
    mask = torch.zeros(1, 40, 40, dtype=torch.uint8)
    mask[0, 10:30, 10:30] = 1
    torch.manual_seed(1)
    out, out_mask = CopyPaste(backgrounds, p=1.0)(image, mask)
    person = out_mask[0] == 1
    assert person.any()
    # red where the mask is (at least half red at the soft edge), the blue scene elsewhere
    assert (out[0][person] >= 127).all() and (out[2][person] <= 128).all()
    assert (out[0][~person] <= 128).all() and (out[2][~person] >= 127).all()
    assert (out[0] > 250).sum() >= 0.5 * person.sum()  # the inside is pure red


def test_copy_paste_keeps_the_teachers_unsure_pixels_out_of_the_loss(tmp_path):
    # A pseudo-labelled person: a ring the teachers disagreed on (IGNORE) around the sure part.
    # Pasted (at full scale, so over the whole crop), the ring stays IGNORE, not background.
    backgrounds = tmp_path / "bg"
    backgrounds.mkdir()
    Image.fromarray(np.full((50, 70, 3), (0, 0, 255), np.uint8)).save(backgrounds / "blue.png")
    image = torch.zeros(3, 40, 40, dtype=torch.uint8)
    mask = torch.zeros(1, 40, 40, dtype=torch.uint8)
    mask[0, 6:34, 6:34] = IGNORE
    mask[0, 10:30, 10:30] = 1
    torch.manual_seed(1)
    _, out_mask = CopyPaste(backgrounds, p=1.0, scale=(1.0, 1.0))(image, mask)
    assert torch.equal(out_mask, mask)  # pasted whole at full scale: the same labels


def test_eval_transform_stretches_sides_to_the_multiple_and_keeps_full_mask():
    image = np.zeros((30, 60, 3), np.uint8)
    image[:, 30:] = 200
    mask = np.ones((30, 60), np.uint8)
    img, msk, (h, w) = EvalTransform(72, multiple=16)(image, mask)
    # 36x72 scaled, each side stretched to the next multiple of 16 (as the Segmenter sizes it):
    # no padded band, the right half still bright down to the last row and column.
    assert (h, w) == (48, 80) and img.shape == (3, 48, 80)
    assert img[:, -1, 48:].min() > 0.7 and img[:, -1, :32].max() < 0.05
    assert msk.shape == (1, 30, 60)
    batch = eval_collate([(img, msk, (h, w), "a"), (torch.zeros(3, 48, 16), msk, (48, 10), "b")])
    assert batch[0].shape == (2, 3, 48, 80)


@pytest.mark.skipif(not (SHARED / "coco-person-train").is_dir(), reason="../shared not present")
def test_real_coco_pack_through_pycocotools():
    ds = build_dataset([str(SHARED / "coco-person-train")])
    assert len(ds) == 86
    people = 0
    for i in range(0, 86, 17):
        image, mask, group = ds[i]
        assert image.shape[:2] == mask.shape and group == "coco"
        people += int((mask == 1).sum() > 0)
    assert people >= 4


def test_ignore_folder_marks_unsure_pixels(tmp_path):
    for sub in ("images", "masks", "ignore"):
        (tmp_path / sub).mkdir()
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    mask = np.zeros((8, 10), np.uint8)
    mask[2:6, 2:6] = 255
    unsure = np.zeros((8, 10), np.uint8)
    unsure[5:7, 5:8] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    Image.fromarray(unsure).save(tmp_path / "ignore" / "a.png")
    _, got, _ = FolderDataset(tmp_path)[0]
    expected = (mask > 0).astype(np.uint8)
    expected[unsure > 0] = IGNORE
    np.testing.assert_array_equal(got, expected)


def _people_pack(root, n=6):
    """Photos with one person each, whose colour (200) no background has."""
    for sub in ("images", "masks", "bg"):
        (root / sub).mkdir()
    for i in range(n):
        image = np.full((40, 30, 3), 20, np.uint8)
        mask = np.zeros((40, 30), np.uint8)
        # Some people are thin: turned to lie down they are far wider than the frame.
        mask[1:39, 10 : 20 if i % 2 else 12] = 255
        image[mask > 0] = 200
        Image.fromarray(image).save(root / "images" / f"p-{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"p-{i}.png")
    for i in range(3):
        Image.fromarray(np.full((50, 60, 3), 60, np.uint8)).save(root / "bg" / f"{i}.jpg")


def test_scenes_paste_people_with_their_masks_and_negatives_are_empty(tmp_path):
    from personcut.train.data.scenes import SceneDataset

    _people_pack(tmp_path)
    base = FolderDataset(tmp_path, TrainTransform(32, rotate_degrees=0))
    torch.manual_seed(0)
    scenes = SceneDataset(base, tmp_path / "bg", 64, scene_p=1.0, negative_p=0.0)
    for i in range(40):
        image, mask, group = scenes[i]
        assert group == "scene" and image.shape == (3, 64, 64) and mask.shape == (1, 64, 64)
        assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
        person = mask[0] == 1
        assert person.any()
        # Colour jitter moves the values, but people stay far brighter than the background.
        gray = image.mean(0)
        assert gray[person].mean() > gray[~person].mean() + 0.2
    negatives = SceneDataset(base, tmp_path / "bg", 64, scene_p=0.0, negative_p=1.0)
    image, mask, group = negatives[0]
    assert group == "negative" and mask.sum() == 0
    unchanged = SceneDataset(base, tmp_path / "bg", 64, scene_p=0.0, negative_p=0.0)
    assert unchanged[0][1].shape == (1, 32, 32)  # the wrapped item, from its own transform


def test_crowd_scenes_stand_people_in_rows_nearer_in_front(tmp_path, monkeypatch):
    from personcut.train.data import scenes as scenes_module
    from personcut.train.data.scenes import CROWD_HEIGHT, CROWD_PEOPLE, SceneDataset

    _people_pack(tmp_path)
    base = FolderDataset(tmp_path, TrainTransform(32, rotate_degrees=0))
    torch.manual_seed(0)
    crowds = SceneDataset(base, tmp_path / "bg", 100, scene_p=1.0, negative_p=0.0, crowd_p=1.0)
    heights, placed = [], []

    def person(height, lying=True):  # each person a solid block of its own grey
        assert not lying  # crowds stand
        heights.append(height)
        a = np.ones((height, max(1, height // 3)), np.float32)
        return np.full((*a.shape, 3), float(len(heights)), np.float32), a, (0, 0, 0, 0)

    paste = scenes_module._paste

    def recording_paste(canvas, mask, colour, a, top, left):
        placed.append((top, left, *a.shape))
        paste(canvas, mask, colour, a, top, left)

    crowds._person = person
    monkeypatch.setattr(scenes_module, "_paste", recording_paste)
    canvas = np.zeros((100, 100, 3), np.float32)
    mask = np.zeros((100, 100), np.uint8)
    crowds._crowd(canvas, mask)
    assert CROWD_PEOPLE[0] <= len(heights) <= CROWD_PEOPLE[1] and len(placed) == len(heights)
    assert all(CROWD_HEIGHT[0] * 100 - 1 <= h <= CROWD_HEIGHT[1] * 100 + 1 for h in heights)
    # From the back to the front: feet lower down the frame and people taller, one by one.
    feet = [top + h for top, _, h, _ in placed]
    assert feet == sorted(feet) and heights == sorted(heights) and heights[0] < heights[-1]
    # The nearer hide the farther: each pixel shows the last person laid over it.
    expected = np.zeros((100, 100))
    for k, (top, left, h, w) in enumerate(placed, start=1):
        expected[max(0, top) : max(0, top + h), max(0, left) : max(0, left + w)] = k
    np.testing.assert_array_equal(canvas[..., 0], expected)
    np.testing.assert_array_equal(mask, expected > 0)
    monkeypatch.undo()
    # Through the dataset, with the real people: masks where the people are.
    del crowds._person
    for i in range(10):
        image, got, group = crowds[i]
        person_px = got[0] == 1
        assert group == "scene" and person_px.any()
        gray = image.mean(0)
        assert gray[person_px].mean() > gray[~person_px].mean() + 0.2
    # Off (the default), the scene path never builds a crowd.
    plain = SceneDataset(base, tmp_path / "bg", 64, scene_p=1.0, negative_p=0.0)

    def no_crowd(*_):
        raise AssertionError("crowd built")

    plain._crowd = no_crowd
    for i in range(10):
        plain[i]


def test_scene_settings_are_checked():
    from personcut.train.config import ConfigError, DataConfig

    with pytest.raises(ConfigError, match="scene_crowd_p"):
        DataConfig(scene_crowd_p=1.5)

    with pytest.raises(ConfigError, match="need data.backgrounds"):
        DataConfig(scene_p=0.3)
    with pytest.raises(ConfigError, match="sum to <= 1"):
        DataConfig(scene_p=0.8, negative_p=0.3, backgrounds="bg")


def test_training_skips_a_bomb_with_a_warning(tmp_path, caplog):
    from conftest import png_bomb

    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    png_bomb(tmp_path / "images" / "bomb.png")
    png_bomb(tmp_path / "masks" / "bomb.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "ok.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / "ok.png")
    ds = FolderDataset(tmp_path)
    assert len(ds) == 1 and "bomb.png" in ds.skipped[0]


def test_colour_masks_are_read_and_counted(tmp_path, caplog):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    red = np.zeros((6, 8, 3), np.uint8)
    red[1:4, 2:6] = (255, 0, 0)  # person in red on black: luma 76, read as gray it vanished
    cutout = np.zeros((6, 8, 4), np.uint8)
    cutout[..., :3] = 200
    cutout[2:5, 1:3, 3] = 255  # a cutout used as a mask: alpha is the person
    for stem, mask in (("red", red), ("cut", cutout)):
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "images" / f"{stem}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{stem}.png")
    with caplog.at_level("WARNING"):
        ds = FolderDataset(tmp_path)
    assert len(ds.colour_masks) == 2 and "2 masks are not grayscale" in caplog.text
    by_stem = {ds.items[i][0].stem: ds[i][1] for i in range(len(ds))}
    np.testing.assert_array_equal(by_stem["red"], (red[..., 0] > 0).astype(np.uint8))
    np.testing.assert_array_equal(by_stem["cut"], (cutout[..., 3] > 0).astype(np.uint8))


def test_photo_look_keeps_image_and_mask_together():
    from personcut.train.data.transforms import PhotoLook

    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    msk = torch.zeros(1, 32, 32, dtype=torch.uint8)
    img[:, 2:10, 20:30] = 200  # the "person" is the bright block, wherever it turns
    msk[:, 2:10, 20:30] = 1
    torch.manual_seed(0)
    turns, grays = PhotoLook(turn_p=1.0), PhotoLook(gray_p=1.0)
    seen = set()
    for _ in range(20):
        a, m = turns(img, msk)
        assert torch.equal(a[0] > 100, m[0] == 1)
        seen.add(tuple(torch.nonzero(m[0])[0].tolist()))
        g, _ = grays(img.clone().index_fill_(0, torch.tensor([0]), 50), msk)
        assert (g[0] >= g[1]).all() and (g[1] >= g[2]).all()  # gray or sepia: no green cast
    assert len(seen) == 3  # 90, 180 and 270 degrees all happen
    backlit = PhotoLook(exposure_p=1.0)
    for _ in range(20):
        a, m = backlit(torch.full((3, 32, 32), 100, dtype=torch.uint8), msk)
        assert torch.equal(m, msk) and a.dtype == torch.uint8


def test_cast_shadows_darken_the_background_beside_the_person_only():
    from personcut.train.data.transforms import PhotoLook

    img = torch.full((3, 64, 64), 180, dtype=torch.uint8)
    msk = torch.zeros(1, 64, 64, dtype=torch.uint8)
    msk[:, 10:40, 28:36] = 1  # a standing person, feet at row 39
    img[:, 10:40, 28:36] = 90
    shadows = PhotoLook(shadow_p=1.0)
    torch.manual_seed(0)
    ground = wall = 0
    for _ in range(40):
        out, m = shadows(img, msk)
        assert torch.equal(m, msk)  # a shadow is background
        person = msk[0] == 1
        assert torch.equal(out[:, person], img[:, person])  # the person is not darkened
        darker = (out.int() < img.int() - 10).any(0)
        assert (out.int() <= img.int()).all() and darker.sum() > 20  # a shadow, only darker
        below = darker[40:].any()  # under the feet: on the ground; else beside: on a wall
        ground, wall = ground + int(below), wall + int(not below)
    assert ground and wall


def test_labelled_photos_cast_their_shadow_whole_before_the_crop(monkeypatch):
    from personcut.train.data import transforms

    seen = []
    monkeypatch.setattr(transforms, "cast_shadow", lambda img, msk: seen.append(img.shape) or img)
    image, mask = np.zeros((120, 80, 3), np.uint8), np.zeros((120, 80), np.uint8)
    mask[20:110, 30:50] = 1
    img, _ = transforms.TrainTransform(32, shadow_p=1.0)(image, mask)
    assert seen == [(3, 120, 80)] and img.shape == (3, 32, 32)
    transforms.TrainTransform(32, shadow_p=0.0)(image, mask)
    assert len(seen) == 1


def test_negatives_halves_and_closeups(tmp_path):
    from personcut.train.data.transforms import closeup, person_free_photos

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        for i in range(5):
            Image.new("RGB", (8, 8)).save(tmp_path / sub / f"{i}.jpg")
    even = person_free_photos([tmp_path], "even")
    odd = person_free_photos([tmp_path], "odd")
    assert len(even) == 6 and len(odd) == 4 and not set(even) & set(odd)
    assert sorted(even + odd) == sorted(person_free_photos([tmp_path]))
    image = np.zeros((100, 200, 3), np.uint8)
    mask = np.zeros((100, 200), np.uint8)
    mask[40:60, 150:170] = 1
    torch.manual_seed(0)
    for _ in range(10):
        crop_image, crop_mask = closeup(image, mask)
        assert crop_image.shape[:2] == crop_mask.shape and crop_mask.any()
        assert crop_mask.shape[0] == crop_mask.shape[1] <= 55


def test_a_config_s_exclude_list_reaches_the_training_loader(folder_data, tmp_path):
    from personcut.train.loop import build_loaders
    from personcut.train.runtime import Runtime

    listing = tmp_path / "label_errors.txt"
    listing.write_text("beta-000\nbeta-002\n")
    config = tiny_config(folder_data, tmp_path / "run")
    config.data.exclude = str(listing)
    train_loader, val_loader = build_loaders(config, Runtime(torch.device("cpu")))
    assert len(train_loader.dataset) == 10
    assert len(val_loader.dataset) == 12  # the list is about training labels only
