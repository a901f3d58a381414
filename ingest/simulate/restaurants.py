"""The simulated restaurants: a Beijing registry, one monitor each, deterministic by seed.

Each kitchen gets a position (``lat``/``lon``, WGS-84) around the centre of its district, so the city
dashboard's map shows them where such a district's restaurants would be: Chaoyang around 39.92 N
116.44 E, Haidian to the north-west, and so on. The positions are drawn from their own random stream
(seeded by seed and restaurant id), so adding them changed no other column of a seeded registry.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

from ingest.registry import Device, Registry
from ingest.simulate.model import DEFAULT_MODEL, KitchenModel

_DISTRICTS = {
    # district -> (streets, weight)
    "朝阳区": ("建国路 朝阳北路 望京西路 三里屯路 工体北路 劲松南路 双井东路 安立路".split(), 5),
    "海淀区": ("中关村大街 学院路 成府路 知春路 万泉河路 西三环北路 花园路".split(), 4),
    "东城区": ("东直门内大街 王府井大街 东四北大街 和平里东街 崇文门外大街 交道口南大街".split(), 3),
    "西城区": ("西单北大街 德胜门内大街 西直门外大街 广安门内大街 新街口外大街 鼓楼西大街".split(), 3),
    "丰台区": ("丰台北路 方庄路 马家堡东路 南三环西路 芳城园路 角门路".split(), 3),
    "石景山区": ("石景山路 鲁谷路 古城大街 八角东街 苹果园路".split(), 2),
}
#: district -> (centre lat, centre lon, spread in degrees): approximate WGS-84 centres of the districts'
#: built-up areas (simulated positions, not surveyed ones); the spread is one standard deviation.
_DISTRICT_CENTRES = {
    "朝阳区": (39.9219, 116.4432, 0.030),
    "海淀区": (39.9593, 116.2981, 0.030),
    "东城区": (39.9288, 116.4160, 0.012),
    "西城区": (39.9123, 116.3659, 0.012),
    "丰台区": (39.8585, 116.2870, 0.025),
    "石景山区": (39.9056, 116.2229, 0.015),
}
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙马胡朱郭何林高罗郑梁谢宋唐韩冯邓曹彭"
_GIVEN = "伟 芳 娜 敏 静 强 磊 军 洋 勇 艳 杰 涛 明 超 丽 秀英 建国 桂英 志强 海燕 建华 国平 春梅 红霞 德胜 玉兰 文斌".split()
_SMALL_DISHES = (
    "牛肉面 炸酱面 饺子馆 包子铺 麻辣烫 黄焖鸡 卤肉饭 肠粉 馄饨 煎饼 盖浇饭 米线 烧饼 豆花".split()
)
_CHAIN_DISHES = (
    "兰州拉面 重庆小面 沙县小吃 武汉热干面 西安肉夹馍 延边冷面 新疆大盘鸡 桂林米粉 柳州螺蛳粉 天津煎饼果子"
).split()
_FLAVORS = "川味 湘味 粤香 蜀香 东北 西北 京味 徽州 江南 潮汕 云南 客家 鲁味".split()
_MEDIUM_DISHES = "烧腊 酸菜鱼 火锅 烧烤 砂锅粥 羊蝎子 涮肉 串串香 小龙虾 家常菜".split()
_MEDIUM_KINDS = "小厨 人家 菜馆 小馆 餐厅 私房菜 土菜馆 大排档".split()
_LARGE_KINDS = "酒楼 饭庄 食府 大酒店 酒家 宴会厅".split()
_LARGE_PREFIX = "金 福 聚 鸿 全 丰 华 百 同 盛 德 顺".split()
_LARGE_SECOND = "满楼 源 德 运 聚 和 兴 泰 宾 福".split()


def make_registry(n_restaurants: int, seed: int = 1, *, model: KitchenModel = DEFAULT_MODEL) -> Registry:
    """A registry of ``n_restaurants`` restaurants in Beijing, one monitor each, deterministic by seed.

    Restaurant ids ``R0001``..., device ids ``FW-R0001-1``; ``hj212_pw`` 123456; ``owner_notify`` empty;
    ``profile`` ``db11-1488`` for a few (``model.db11_profile_share``), empty for the rest; ``lat``/``lon``
    around the district's centre (:func:`position`).
    """
    if n_restaurants < 0:
        raise ValueError("n_restaurants must be >= 0")
    rng = random.Random(f"fumewatch-registry:{seed}")
    districts = list(_DISTRICTS)
    weights = [_DISTRICTS[d][1] for d in districts]
    used_names: set[str] = set()
    devices = []
    for i in range(1, n_restaurants + 1):
        rid = f"R{i:04d}"
        if rng.random() < model.large_kitchen_share:
            heads = rng.randint(8, 12)
        else:
            heads = rng.choices([1, 2, 3, 4, 5, 6], weights=[12, 22, 22, 18, 12, 6])[0]
        surname = rng.choice(_SURNAMES)
        owner = surname + rng.choice(_GIVEN)
        district = rng.choices(districts, weights=weights)[0]
        street = rng.choice(_DISTRICTS[district][0])
        address = f"北京市{district}{street}{rng.randint(1, 299)}号"
        if rng.random() < 0.3:
            address += f"{rng.randint(1, 3)}层"
        name = _restaurant_name(rng, heads, surname)
        if name in used_names:
            name = f"{name}（{street}店）"
        k = 2
        while name in used_names:  # very unlikely: same name on the same street
            name = f"{name}{k}"
            k += 1
        used_names.add(name)
        profile = "db11-1488" if rng.random() < model.db11_profile_share else ""
        lat, lon = position(district, rid, seed)
        devices.append(
            Device(
                restaurant_id=rid,
                name=name,
                district=district,
                device_id=f"FW-{rid}-1",
                stove_heads=heads,
                address=address,
                owner_name=owner,
                owner_notify="",
                profile=profile,
                hj212_pw="123456",
                lat=lat,
                lon=lon,
            )
        )
    return Registry(devices)


def position(district: str, restaurant_id: str, seed: int = 1) -> tuple[float, float]:
    """A simulated kitchen's (lat, lon), WGS-84, 6 decimals (~0.1 m): normal around the district's centre,
    at most 2.5 spreads away. Its own random stream, so it depends only on (seed, district, restaurant)."""
    lat0, lon0, spread = _DISTRICT_CENTRES.get(district, _DISTRICT_CENTRES["朝阳区"])
    rng = random.Random(f"fumewatch-position:{seed}:{restaurant_id}")
    # a degree of longitude is shorter than one of latitude by cos(lat): keep the cloud round on the map
    dlat = max(-2.5, min(2.5, rng.gauss(0.0, 1.0))) * spread
    dlon = max(-2.5, min(2.5, rng.gauss(0.0, 1.0))) * spread / math.cos(math.radians(lat0))
    return round(lat0 + dlat, 6), round(lon0 + dlon, 6)


def _restaurant_name(rng: random.Random, heads: int, surname: str) -> str:
    if heads <= 2:
        pattern = rng.randrange(3)
        if pattern == 0:
            return f"老{surname}{rng.choice(_SMALL_DISHES)}"
        if pattern == 1:
            return f"{surname}记{rng.choice(_SMALL_DISHES)}"
        return rng.choice(_CHAIN_DISHES)
    if heads <= 6:
        pattern = rng.randrange(3)
        if pattern == 0:
            return f"{rng.choice(_FLAVORS)}{rng.choice(_MEDIUM_KINDS)}"
        if pattern == 1:
            return f"{rng.choice(_FLAVORS)}{rng.choice(_MEDIUM_DISHES)}"
        return f"{surname}记{rng.choice(_MEDIUM_DISHES)}"
    return f"{rng.choice(_LARGE_PREFIX)}{rng.choice(_LARGE_SECOND)}{rng.choice(_LARGE_KINDS)}"


def write_registry(
    path: str | os.PathLike[str], n_restaurants: int, seed: int = 1, *, model: KitchenModel = DEFAULT_MODEL
) -> Registry:
    """:func:`make_registry` and write it as the registry CSV at ``path`` (parent dirs created)."""
    reg = make_registry(n_restaurants, seed, model=model)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    reg.write_csv(p)
    return reg
