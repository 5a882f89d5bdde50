"""The suite's own benchmarks, registered in ``benchmarks.BENCHMARKS`` (factories import lazily)."""
from __future__ import annotations


def register(registry) -> None:
    # each factory takes ceiling_silent="zero" (default) or "drop" (Brain-Score's), e.g.
    # benchmarks.load("cowley2023.V4", ceiling_silent="drop"): see benchmarks.metrics.ceiling
    # tags (leaderboard.aggregate.declared): embedded, synthetic data or recordings; scale "ceiled", the value is r² /
    # ceiling, a fraction of the benchmark's noise ceiling (what the leaderboard averages)
    def ventral(region):
        def build(ceiling_silent: str = "zero"):
            from neurozoo.benchmarks.neural import dataset_benchmark

            return dataset_benchmark(f"ventral_embedded.{region}-temporal", f"ventral_embedded.{region}", region,
                                     image_size=None,  # the rendered 64x64 images, as the teacher saw them
                                     description=f"embedded {region} data, span-time PLS per 10 ms bin, split-half ceiling",
                                     ceiling_silent=ceiling_silent)
        return build

    def cowley(ceiling_silent: str = "zero"):
        from neurozoo.benchmarks.neural import dataset_benchmark

        return dataset_benchmark("cowley2023.V4", "cowley2023.v4_210325", "V4",
                                 description="Cowley 2023 V4 session 210325, PLS in one 70-170 ms window",
                                 ceiling_silent=ceiling_silent)

    def zhang(ceiling_silent: str = "zero"):
        from neurozoo.benchmarks.neural import DecodingBenchmark

        return DecodingBenchmark("zhang_desimone2011.IT-decoding", "zhang_desimone2011.it", ceiling_silent=ceiling_silent)

    for region in ("V4", "IT"):
        registry.add(f"ventral_embedded.{region}-temporal", ventral(region), region=region, embedded=True,
                     scale="ceiled",
                     description=f"embedded teacher {region} responses: span-time PLS per 10 ms bin 70-260 ms, "
                                 "r²/ceiling against the split-half (Spearman-Brown) ceiling")
    registry.add("cowley2023.V4", cowley, region="V4", embedded=False, scale="ceiled",
                 description="macaque V4 (Cowley et al. 2023, session 210325: 640 images of Bashivan et al. 2019): PLS, "
                             "one 70-170 ms bin, r²/ceiling against the split-half (Spearman-Brown) ceiling")
    registry.add("zhang_desimone2011.IT-decoding", zhang, region="IT", data_only=True, embedded=False,
                 description="macaque IT (Zhang et al. 2011): object decoding and ceiling per bin; data only, no images")

    def imagenet():
        from neurozoo.benchmarks.imagenet import ImageNetBenchmark

        return ImageNetBenchmark()

    # on the user's own folder (--data): no leaderboard job has one (leaderboard.aggregate.scores_models)
    registry.add("imagenet.val", imagenet, family="imagenet", region="object recognition", own_data=True,
                 embedded=False,
                 description="ImageNet-style top-1 (the value, %) and top-5 of the model's answer on your folder "
                             "(zoo score MODEL imagenet.val --data DIR), with zoo train's evaluation transform and loop")
