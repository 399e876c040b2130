"""Name vocabularies with frequencies, and their romanizations (computed once per vocabulary).

Surname shares follow the published national rankings (top 100 cover about 86%); the
given-name table makes 张伟, 王伟, 李娜 as common as they are in real registers. Pinyin is
computed with pypinyin once per vocabulary entry, never per record; surnames with special
readings (单 Shan, 曾 Zeng, 区 Ou, ...) are overridden by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pypinyin import Style, lazy_pinyin

S = np.dtypes.StringDType()

# Top surnames with shares in percent (national ranking, rounded).
_TOP_SURNAMES = (
    "王7.12 李7.00 张6.74 刘5.10 陈4.61 杨3.22 黄2.45 赵2.29 吴2.05 周1.97 徐1.60 孙1.51 马1.39 朱1.32 胡1.29 "
    "郭1.25 何1.21 林1.18 高1.17 罗1.11 郑1.07 梁0.94 谢0.87 宋0.86 唐0.83 许0.80 韩0.78 冯0.75 邓0.74 曹0.72 "
    "彭0.70 曾0.69 肖0.63 田0.61 董0.60 袁0.58 潘0.57 于0.56 蒋0.55 蔡0.54 余0.53 杜0.52 叶0.51 程0.50 苏0.49 "
    "魏0.48 吕0.47 丁0.46 任0.45 沈0.44 姚0.43 卢0.42 姜0.41 崔0.40 钟0.39 谭0.38 陆0.37 汪0.36 范0.35 金0.34 "
    "石0.33 廖0.32 贾0.31 夏0.30 韦0.29 付0.28 方0.27 白0.26 邹0.25 孟0.24 熊0.23 秦0.22 邱0.21 江0.20 尹0.20 "
    "薛0.19 闫0.19 段0.18 雷0.18 侯0.17 龙0.17 史0.16 陶0.16 黎0.15 贺0.15 顾0.14 毛0.14 郝0.13 龚0.13 邵0.12 "
    "万0.12 钱0.12 严0.11 覃0.11 武0.11 戴0.10 莫0.10 孔0.10 向0.10 汤0.10"
)
# Rarer single-character surnames sharing the remaining mass (including special readings).
_RARE_SURNAMES = (
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕季裴霍涂成"
    "苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶牟艾尤阳时穆农司卓古吉简车项连芦麦褚娄窦戚岑景党宫费卜冷"
    "晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池麻苑迟邝"
    "单区仇解查朴翟缪种"
)
_COMPOUND_SURNAMES = "欧阳 司马 诸葛 上官 东方 皇甫 慕容 令狐 公孙 尉迟 司徒 端木 夏侯 长孙 宇文 独孤"
_TOP_SHARE = 0.86
_COMPOUND_SHARE = 0.004

# Surname readings pypinyin gets wrong.
SURNAME_READINGS: dict[str, str] = {
    "单": "shan", "曾": "zeng", "区": "ou", "仇": "qiu", "解": "xie", "查": "zha", "朴": "piao",
    "翟": "zhai", "缪": "miao", "覃": "qin", "种": "chong", "尉迟": "yuchi", "长孙": "zhangsun",
}

# Whole given names that dominate real registers (weights), by gender.
_POPULAR_MALE = (
    "伟30 磊10 强10 军10 勇10 杰9 涛8 明7 超7 刚6 平5 辉6 鹏5 华5 飞5 鑫5 波5 斌5 宇5 浩5 凯4 健4 俊4 帆3 "
    "旭3 宁3 龙3 林3 建华4 建国4 建军4 志强4 志明3 国强3 海涛3 文博2 子轩3 浩然3 宇轩2 俊杰3"
)
_POPULAR_FEMALE = (
    "芳20 娜18 敏17 静17 秀英14 丽14 艳12 娟10 霞8 秀兰8 燕8 玲7 桂英7 丹7 萍6 红6 玉兰5 桂兰5 英5 梅5 莉4 "
    "婷5 雪4 倩4 琳4 颖4 慧4 洁3 晶3 欣怡3 子涵3 雨涵2 诗涵2 梓涵2 秀珍3 淑珍2 丽娟3 春梅2 海燕3 晓燕2"
)
# Characters that compose other given names (first, second position), by gender.
_MALE_FIRST = "建国志明文海俊浩宇子博晨天嘉家振德永成立新世宏晓金伟长小明云鸿思泽一嘉"
_MALE_SECOND = "华军强平东亮辉杰涛峰伟明刚斌鹏飞龙林轩豪然宇航博文彬哲睿阳鑫磊超勇"
_FEMALE_FIRST = "秀丽美玉婷雪晓欣怡佳雨梦诗思子琳慧淑月红春燕海桂金凤小亚"
_FEMALE_SECOND = "英兰芳华珍霞娟婷敏静燕琴玲梅丽红萍洁颖雪倩莹涵萱琪怡妍蕾璐"
_P_POPULAR = 0.35
_P_SINGLE = 0.07

# Simplified -> traditional, for names written in traditional characters.
TRADITIONAL: dict[str, str] = dict(
    zip(
        "张陈刘黄杨赵吴孙马郑罗谢许韩冯邓叶苏吕卢钟谭陆贾龚万钱严汤伟华丽红军强刚辉鹏飞艳凤兰国杰涛龙宁东晓颖"
        "庆云荣丰爱梦诗轩贤卫义礼远凯锋铭阳欧门长闻诸宝亿亚桂鸿泽琳莹萱琪蕾璐娟玲丹萍倩",
        "張陳劉黃楊趙吳孫馬鄭羅謝許韓馮鄧葉蘇呂盧鍾譚陸賈龔萬錢嚴湯偉華麗紅軍強剛輝鵬飛艷鳳蘭國傑濤龍寧東曉穎"
        "慶雲榮豐愛夢詩軒賢衛義禮遠凱鋒銘陽歐門長聞諸寶億亞桂鴻澤琳瑩萱琪蕾璐娟玲丹萍倩",
        strict=True,
    )
)
# Homophone typos of given-name characters (first variant set, second variant set).
HOMOPHONES: dict[str, tuple[str, str]] = {
    "伟": ("玮", "炜"), "红": ("虹", "宏"), "燕": ("艳", "雁"), "艳": ("燕", "彦"), "丽": ("莉", "俐"),
    "静": ("婧", "靖"), "军": ("君", "均"), "明": ("铭", "鸣"), "华": ("桦", "骅"), "平": ("萍", "苹"),
    "玲": ("铃", "苓"), "芳": ("方", "舫"), "杰": ("捷", "洁"), "涛": ("韬", "滔"), "斌": ("彬", "滨"),
    "峰": ("锋", "丰"), "勇": ("永", "涌"), "娟": ("鹃", "涓"), "霞": ("侠", "遐"), "刚": ("钢", "纲"),
    "鹏": ("朋", "蓬"), "辉": ("晖", "徽"), "飞": ("菲", "非"), "宇": ("雨", "羽"), "浩": ("皓", "昊"),
    "婷": ("亭", "庭"), "晶": ("菁", "京"), "欣": ("新", "馨"), "慧": ("惠", "蕙"), "琳": ("林", "霖"),
    "颖": ("莹", "滢"), "梅": ("玫", "媚"), "英": ("瑛", "莹"), "敏": ("珉", "闵"), "娜": ("纳", "那"),
}

# Uyghur / Kazakh style given names and patronymics, joined by a middle dot.
_MINORITY_FIRST = (
    "阿依古丽 买买提 艾尔肯 古丽娜尔 热依拉 阿卜杜拉 迪丽热巴 努尔 阿力木 帕提古丽 吐尔逊 玛依拉 艾力 "
    "米热古丽 阿迪力 阿依努尔 麦麦提 祖丽菲娅 依明 热娜"
)
_MINORITY_SECOND = "买买提 吐尔逊 艾力 阿不都 托合提 艾合买提 迪力木拉提 阿吉 热合曼 司马义 玉素甫 卡德尔 肉孜 吾守尔"
_MINORITY_FEMALE_TEXT = "阿依古丽 古丽娜尔 热依拉 迪丽热巴 帕提古丽 玛依拉 米热古丽 阿依努尔 祖丽菲娅 热娜"

# Hong Kong (Cantonese) and Taiwan (Wade-Giles) romanizations.
HK_SURNAMES: dict[str, str] = {
    "陈": "CHAN", "黄": "WONG", "李": "LEE", "张": "CHEUNG", "梁": "LEUNG", "林": "LAM", "刘": "LAU",
    "吴": "NG", "何": "HO", "郭": "KWOK", "王": "WONG", "杨": "YEUNG", "周": "CHOW", "郑": "CHENG",
    "谢": "TSE", "罗": "LAW", "许": "HUI", "曾": "TSANG", "邓": "TANG", "冯": "FUNG",
}
HK_GIVEN: dict[str, str] = {
    "大文": "TAI MAN", "嘉欣": "KA YAN", "志明": "CHI MING", "家豪": "KA HO", "美玲": "MEI LING",
    "慧敏": "WAI MAN", "伟强": "WAI KEUNG", "子健": "TSZ KIN", "淑仪": "SUK YEE", "国华": "KWOK WAH",
    "嘉敏": "KA MAN", "俊杰": "CHUN KIT", "咏诗": "WING SZE", "志伟": "CHI WAI", "丽华": "LAI WAH",
}
TW_SURNAMES: dict[str, str] = {
    "陈": "CHEN", "张": "CHANG", "林": "LIN", "黄": "HUANG", "李": "LEE", "王": "WANG", "吴": "WU",
    "刘": "LIU", "蔡": "TSAI", "杨": "YANG", "许": "HSU", "郑": "CHENG", "谢": "HSIEH", "郭": "KUO",
    "洪": "HUNG", "曾": "TSENG", "邱": "CHIU", "廖": "LIAO", "赖": "LAI", "周": "CHOU",
}
TW_GIVEN: dict[str, str] = {
    "志明": "CHIH-MING", "淑芬": "SHU-FEN", "家豪": "CHIA-HAO", "怡君": "YI-CHUN", "雅婷": "YA-TING",
    "俊杰": "CHUN-CHIEH", "建宏": "CHIEN-HUNG", "美玲": "MEI-LING", "宗翰": "TSUNG-HAN", "诗涵": "SHIH-HAN",
    "冠宇": "KUAN-YU", "佩君": "PEI-CHUN", "承恩": "CHENG-EN", "欣怡": "HSIN-YI", "文雄": "WEN-HSIUNG",
}
HK_FEMALE = {"嘉欣", "美玲", "慧敏", "淑仪", "嘉敏", "咏诗", "丽华"}
TW_FEMALE = {"淑芬", "怡君", "雅婷", "美玲", "诗涵", "佩君", "欣怡"}

# Foreign nationals: (ISO 3166 alpha-3, surnames, male given, female given, passport shape).
FOREIGN: tuple[tuple[str, str, str, str, str], ...] = (
    ("USA", "SMITH JOHNSON WILLIAMS BROWN JONES MILLER DAVIS", "JOHN MICHAEL DAVID JAMES ROBERT",
     "MARY JENNIFER LINDA SARAH EMILY", "D9"),
    ("GBR", "TAYLOR BROWN WILSON EVANS THOMAS ROBERTS", "OLIVER GEORGE HARRY JACK WILLIAM",
     "OLIVIA AMELIA ISLA EMILY POPPY", "D9"),
    ("KOR", "KIM LEE PARK CHOI JUNG KANG", "MINJUN SEOJUN DOYUN JIHO", "SEOYEON JIWOO HAYOON MINSEO", "M8"),
    ("JPN", "SATO SUZUKI TAKAHASHI TANAKA WATANABE ITO", "HARUTO SOTA YUTO HIROSHI", "YUI HINA AOI SAKURA", "L2D7"),
    ("DEU", "MUELLER SCHMIDT SCHNEIDER FISCHER WEBER", "LUKAS FELIX MAXIMILIAN PAUL", "ANNA LENA SOPHIE MARIE", "C8"),
    ("FRA", "MARTIN BERNARD DUBOIS THOMAS ROBERT", "LOUIS GABRIEL JULES HUGO", "LOUISE CHLOE CAMILLE MANON",
     "D2L2D5"),
    ("RUS", "IVANOV SMIRNOV KUZNETSOV POPOV PETROV", "ALEXANDER DMITRY SERGEI IVAN", "ANASTASIA MARIA DARIA ANNA",
     "D9"),
    ("SGP", "TAN LIM LEE NG ONG WONG", "WEI JIE JUN HAO KAI WEN", "HUI MIN XIN YI JIA HUI", "E7L"),
)


def _weighted(spec: str) -> tuple[list[str], np.ndarray]:
    """Parse ``"王7.12 李7.00 ..."`` into names and normalized weights."""
    names, weights = [], []
    for tok in spec.split():
        i = next(k for k, c in enumerate(tok) if c.isdigit())
        names.append(tok[:i])
        weights.append(float(tok[i:]))
    w = np.asarray(weights, dtype=np.float64)
    return names, w / w.sum()


def pinyin_of(text: str, surname: bool = False) -> str:
    """Uppercase pinyin of ``text``, syllables run together (surname readings overridden)."""
    if surname and text in SURNAME_READINGS:
        return SURNAME_READINGS[text].upper()
    return "".join(lazy_pinyin(text, style=Style.NORMAL)).upper()


@dataclass(frozen=True)
class Vocab:
    """An indexed vocabulary: text, romanization and sampling probabilities."""

    text: np.ndarray  # StringDType
    latin: np.ndarray  # StringDType, uppercase romanization
    prob: np.ndarray  # float64, sums to 1

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(len(self.text), size=n, p=self.prob)


def _vocab(texts: list[str], prob: np.ndarray, surname: bool = False) -> Vocab:
    latin = [pinyin_of(t, surname=surname) for t in texts]
    return Vocab(np.asarray(texts, dtype=S), np.asarray(latin, dtype=S), prob / prob.sum())


@lru_cache(maxsize=1)
def surnames() -> Vocab:
    top, top_w = _weighted(_TOP_SURNAMES)
    rare = [c for c in dict.fromkeys(_RARE_SURNAMES) if c not in top]
    compound = _COMPOUND_SURNAMES.split()
    top_w = top_w * _TOP_SHARE
    rare_w = np.full(len(rare), (1.0 - _TOP_SHARE - _COMPOUND_SHARE) / len(rare))
    comp_w = np.full(len(compound), _COMPOUND_SHARE / len(compound))
    return _vocab(top + rare + compound, np.concatenate([top_w, rare_w, comp_w]), surname=True)


@dataclass(frozen=True)
class GivenNames:
    """Given-name vocabularies for one gender: whole popular names and composing characters."""

    popular: Vocab
    first: Vocab
    second: Vocab


@lru_cache(maxsize=2)
def given_names(female: bool) -> GivenNames:
    names, w = _weighted(_POPULAR_FEMALE if female else _POPULAR_MALE)
    first = list(dict.fromkeys(_FEMALE_FIRST if female else _MALE_FIRST))
    second = list(dict.fromkeys(_FEMALE_SECOND if female else _MALE_SECOND))
    return GivenNames(
        popular=_vocab(names, w),
        first=_vocab(first, np.ones(len(first))),
        second=_vocab(second, np.ones(len(second))),
    )


def sample_given(rng: np.random.Generator, female: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Given names (text, uppercase pinyin, is_popular) for persons of the given genders."""
    n = len(female)
    text = np.full(n, "", dtype=S)
    latin = np.full(n, "", dtype=S)
    kind = rng.choice(3, size=n, p=[_P_POPULAR, _P_SINGLE, 1.0 - _P_POPULAR - _P_SINGLE])
    for is_female in (False, True):
        g = given_names(is_female)
        for k in range(3):
            m = (female == is_female) & (kind == k)
            cnt = int(m.sum())
            if cnt == 0:
                continue
            if k == 0:
                i = g.popular.sample(rng, cnt)
                text[m], latin[m] = g.popular.text[i], g.popular.latin[i]
            elif k == 1:
                i = g.second.sample(rng, cnt)
                text[m], latin[m] = g.second.text[i], g.second.latin[i]
            else:
                i, j = g.first.sample(rng, cnt), g.second.sample(rng, cnt)
                text[m] = np.strings.add(g.first.text[i], g.second.text[j])
                latin[m] = np.strings.add(g.first.latin[i], g.second.latin[j])
    return text, latin, kind == 0


def sample_minority(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transliterated names ``given·patronymic`` (text with U+00B7, uppercase pinyin 'GIVEN PATRONYMIC', female)."""
    first = _MINORITY_FIRST.split()
    second = _MINORITY_SECOND.split()
    fv = _vocab(first, np.ones(len(first)))
    sv = _vocab(second, np.ones(len(second)))
    i, j = fv.sample(rng, n), sv.sample(rng, n)
    text = np.strings.add(np.strings.add(fv.text[i], "·"), sv.text[j])
    latin = np.strings.add(np.strings.add(fv.latin[i], " "), sv.latin[j])
    female = np.isin(fv.text[i], np.asarray(_MINORITY_FEMALE_TEXT.split(), dtype=S))
    return text, latin, female


def romanized_table(surnames_map: dict[str, str], given_map: dict[str, str]) -> tuple[Vocab, Vocab]:
    """Vocabularies whose ``latin`` is a regional romanization (Hong Kong or Taiwan)."""
    s_text = sorted(surnames_map)
    g_text = sorted(given_map)
    sv = Vocab(np.asarray(s_text, dtype=S), np.asarray([surnames_map[t] for t in s_text], dtype=S),
               np.full(len(s_text), 1.0 / len(s_text)))
    gv = Vocab(np.asarray(g_text, dtype=S), np.asarray([given_map[t] for t in g_text], dtype=S),
               np.full(len(g_text), 1.0 / len(g_text)))
    return sv, gv
