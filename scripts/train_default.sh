#!/usr/bin/env bash
# Reproduce the shipped model from the data in ../shared/data, then put it into the package:
#   1. pseudo-labels for ../shared/data/unlabeled from MediaPipe and rembg's u2netp -> data/pseudo
#   2. configs/default.yaml: EfficientNet-Lite0 U-Net from ImageNet weights      -> runs/default
#   3. configs/default_stage2.yaml: 20 more epochs from stage 1's best at lr 3e-4 -> runs/default_stage2
#   4. configs/default_stage3.yaml: 16 more from stage 2's best, more scenes, 224 crops -> runs/default_stage3
#   5. configs/default_stage4.yaml: stage 3 on persons-train alone, stopped after 600 steps
#   6. configs/default_stage5.yaml, default_stage6.yaml: photo-look augmentations, close-ups and
#      hard negatives (the even half of backdrops-extra)
#   7. ship stage 6's last epoch (weights/personcut.*): the teacher for step 8
#   8. self-training labels for ../shared/data/unlabeled from the shipped stage 6 in --quality best
#      with MediaPipe (and u2netp on ccp) -> data/pseudo-self
#   9. three continuations of stage 6: stage 9 (hand + self-training labels), stage 10 (stage 9
#      continued), stage 11 (stage 9's data, more turned and exposed photos)
#  10. the weights of stages 6, 9, 10 and 11 averaged (a model soup)
#  11. stage 18: 2,000 steps of stage 9's recipe from that average
#  12. stage 20: 3,000 more steps of the same recipe from stage 18
#  13. stages 21 and 22: 3,000 more steps of the same recipe each, from stage 20, then 21
#  14. ship stage 22
#  15. self-training labels made again with the shipped stage 22 as the teacher -> data/pseudo-self22
#  16. stage 26: 2,000 steps from stage 22 on them, the hand labels weighed twice
#  17. ship stages 22 and 26 averaged
#  18. stage 29: 4,000 steps of stage 26's recipe from that average (its raw weights taken out);
#      stage 30: 3,000 more from them with more hard negatives (negative_p 0.10)
#  19. ship stage 29's raw weights and stage 30's averaged
#  20. stage 31: 4,000 steps of stage 30's recipe from that; ship its last epoch
#  21. stage 38: 4,000 steps from stage 31 with the COCO photos weighed twice; ship stages 31 and
#      38 averaged
#  22. grow that Lite0 model into a Lite1 one (the same function, `model.encoder:
#      efficientnet_lite1` in the config): stage 45, 3,000 steps with more hard negatives; stage
#      46, 4,000 more; ship stage 46's last epoch
#  23. stage 47: 4,000 more steps of the same recipe from stage 46; ship its last epoch
#  24. stage 48: 4,000 more from stage 47, averaged with stage 47; grow that into a Lite2 model
#      (wider, the same function, `model.encoder: efficientnet_lite2`): stage 50, 4,000 steps;
#      ship it averaged with its start
#  25. stage 51: 4,000 more steps from stage 50; ship it averaged with its start, redraw the
#      README's pictures
# On a CPU the training can go in slices: add `--stop-after N`, later `--resume runs/default/last.pt`.
# The classic U-Net shipped beside it (`--model classic`) comes from scripts/train_classic.sh.
# Usage: bash scripts/train_default.sh   (from a dev install: bash scripts/test.sh sets one up)
set -euo pipefail
cd "$(dirname "$0")/.."
python scripts/pseudo_label.py
personcut train --config configs/default.yaml
personcut train --config configs/default_stage2.yaml
personcut train --config configs/default_stage3.yaml
personcut train --config configs/default_stage4.yaml --stop-after 6
personcut train --config configs/default_stage5.yaml
personcut train --config configs/default_stage6.yaml
python scripts/ship_model.py runs/default_stage6 --checkpoint last --working-size 320 \
  --stages runs/default runs/default_stage2 runs/default_stage3 runs/default_stage4 \
  runs/default_stage5 runs/default_stage6
python scripts/pseudo_label.py --self-teacher personcut@best --out data/pseudo-self
personcut train --config configs/default_stage9.yaml
personcut train --config configs/default_stage10.yaml
personcut train --config configs/default_stage11.yaml
python scripts/average_models.py runs/default_stage6/last.pt runs/default_stage9/last.pt \
  runs/default_stage10/last.pt runs/default_stage11/last.pt -o runs/soups/soup4.safetensors
personcut train --config configs/default_stage18.yaml
personcut train --config configs/default_stage20.yaml
personcut train --config configs/default_stage21.yaml
personcut train --config configs/default_stage22.yaml
python scripts/ship_model.py runs/default_stage22 --checkpoint last --working-size 320 \
  --stages runs/default runs/default_stage2 runs/default_stage3 runs/default_stage4 \
  runs/default_stage5 runs/default_stage6 runs/default_stage18 runs/default_stage20 \
  runs/default_stage21 runs/default_stage22
python scripts/pseudo_label.py --self-teacher personcut@best --out data/pseudo-self22
personcut train --config configs/default_stage26.yaml
python scripts/average_models.py runs/default_stage22/last.pt runs/default_stage26/last.pt \
  -o runs/soups/s22_s26.safetensors
python scripts/ship_model.py runs/default_stage26 --weights runs/soups/s22_s26.safetensors \
  --working-size 320 --continues-shipped
personcut train --config configs/default_stage29.yaml
python scripts/average_models.py --raw runs/default_stage29/last.pt -o runs/soups/s29raw.safetensors
personcut train --config configs/default_stage30.yaml
python scripts/average_models.py runs/soups/s29raw.safetensors runs/default_stage30/last.pt \
  -o runs/soups/s29raw_s30.safetensors
python scripts/ship_model.py runs/default_stage30 --weights runs/soups/s29raw_s30.safetensors \
  --stages runs/default_stage29 runs/default_stage30 --continues-shipped --working-size 320
personcut train --config configs/default_stage31.yaml
python scripts/ship_model.py runs/default_stage31 --checkpoint last --continues-shipped \
  --working-size 320
personcut train --config configs/default_stage38.yaml
python scripts/average_models.py runs/default_stage31/last.pt runs/default_stage38/last.pt \
  -o runs/soups/s31_s38.safetensors
python scripts/ship_model.py runs/default_stage38 --weights runs/soups/s31_s38.safetensors \
  --continues-shipped --working-size 320
personcut train --config configs/default_stage45.yaml
personcut train --config configs/default_stage46.yaml
python scripts/ship_model.py runs/default_stage46 --checkpoint last --working-size 320 \
  --stages runs/default_stage45 runs/default_stage46 --continues-shipped
personcut train --config configs/default_stage47.yaml
python scripts/ship_model.py runs/default_stage47 --checkpoint last --continues-shipped \
  --working-size 320
personcut train --config configs/default_stage48.yaml
python scripts/average_models.py runs/default_stage48/last.pt runs/default_stage47/last.pt \
  -o runs/soups/s49_start.safetensors
personcut train --config configs/default_stage50.yaml   # grows that average into Lite2
python scripts/average_models.py runs/default_stage50/last.pt runs/soups/s49_start.safetensors \
  -o runs/soups/s50_soup.safetensors
python scripts/ship_model.py runs/default_stage50 --weights runs/soups/s50_soup.safetensors \
  --stages runs/default_stage48 runs/default_stage50 --continues-shipped --working-size 320
personcut train --config configs/default_stage51.yaml
python scripts/average_models.py runs/default_stage51/last.pt runs/soups/s50_soup.safetensors \
  -o runs/soups/s51_soup.safetensors
python scripts/ship_model.py runs/default_stage51 --weights runs/soups/s51_soup.safetensors \
  --stages runs/default_stage51 --continues-shipped --working-size 320
python scripts/make_examples.py
python scripts/make_edge_sheet.py
