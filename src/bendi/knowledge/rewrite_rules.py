"""Rule-based query rewriting for everyday questions: clause splitting and a 口语 → 书面语 lexicon."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Everyday words people use for things statutes and rules name otherwise. Written by hand from
# general usage (family, work, money, housing, traffic, health, safety at work) after reading 40
# questions of LeCoQA's tune half, never its held-out half (docs/knowledge.md). The expansion only
# ADDS the formal terms to the keyword query, so a wrong entry costs a little noise, never the
# user's own words.
COLLOQUIAL: Mapping[str, str] = {
    # family
    "老公": "配偶 夫妻",
    "老婆": "配偶 夫妻",
    "丈夫": "配偶 夫妻",
    "妻子": "配偶 夫妻",
    "媳妇": "配偶 夫妻",
    "结婚": "结婚登记 婚姻",
    "离婚": "离婚 解除婚姻",
    "孩子": "子女 未成年人",
    "小孩": "子女 未成年人",
    "儿子": "子女",
    "女儿": "子女",
    "爸妈": "父母",
    "爹妈": "父母",
    "老人": "老年人 赡养",
    "养老": "赡养",
    "抚养费": "抚养费 抚养",
    "遗产": "遗产 继承",
    "房产证": "不动产权属证书 不动产登记",
    # work
    "老板": "用人单位 雇主",
    "公司": "用人单位 公司",
    "单位": "用人单位",
    "工人": "劳动者 从业人员",
    "员工": "劳动者 职工",
    "打工": "劳动者 劳动合同",
    "上班": "工作 劳动",
    "工资": "劳动报酬 工资",
    "薪水": "劳动报酬 工资",
    "欠薪": "拖欠 劳动报酬",
    "加班": "延长工作时间 加班费",
    "辞退": "解除劳动合同",
    "开除": "解除劳动合同",
    "炒鱿鱼": "解除劳动合同",
    "辞职": "解除劳动合同 劳动者提前通知",
    "试用期": "试用期",
    "五险一金": "社会保险 住房公积金",
    "社保": "社会保险",
    "工伤": "工伤 工伤保险",
    "受伤": "损害 伤害 人身损害",
    "赔钱": "赔偿",
    "补偿": "补偿 经济补偿",
    # money, contracts
    "欠钱": "借款 债务 清偿",
    "借钱": "借款 借款合同",
    "还钱": "清偿 偿还 债务",
    "不还": "逾期 未偿还 违约",
    "利息": "利息 利率",
    "押金": "押金 定金",
    "定金": "定金",
    "退钱": "返还 退还",
    "违约金": "违约金",
    "担保人": "保证人 保证",
    "骗": "欺诈 诈骗",
    "被骗": "欺诈 诈骗",
    "网购": "网络交易 电子商务 消费者",
    "买东西": "买卖合同 消费者",
    "退货": "退货 消费者",
    "假货": "假冒 伪劣 产品质量",
    # housing, neighbours
    "房东": "出租人",
    "租客": "承租人",
    "租房": "租赁 租赁合同",
    "房租": "租金",
    "物业": "物业服务人 物业管理",
    "邻居": "相邻 相邻关系",
    "拆迁": "征收 补偿",
    "盖房": "建造 建设",
    # traffic, injuries, crime
    "车祸": "交通事故 机动车",
    "撞人": "交通事故 人身损害",
    "撞了": "交通事故 损害",
    "酒驾": "饮酒后驾驶 醉酒驾驶",
    "喝酒": "饮酒 酒后",
    "喝了酒": "饮酒 酒后",
    "喝了点酒": "饮酒 酒后",
    "喝点酒": "饮酒 酒后",
    "醉了": "醉酒",
    "开车": "驾驶 机动车",
    "打人": "殴打 故意伤害",
    "打架": "斗殴 殴打",
    "骂人": "侮辱 名誉",
    "辱骂": "侮辱 名誉",
    "造谣": "诽谤 捏造",
    "偷东西": "盗窃",
    "偷": "盗窃",
    "抢": "抢劫 抢夺",
    "坐牢": "有期徒刑 刑罚",
    "判刑": "刑罚 判处",
    "罚款": "罚款 行政处罚",
    "偷拍": "隐私 私密",
    "狗咬": "饲养的动物 动物饲养人",
    "被狗咬": "饲养的动物 动物饲养人",
    "看病": "诊疗 医疗机构",
    "医院": "医疗机构",
    "医生": "医务人员",
    # safety at work (mines, plants)
    "下井": "入井 井下",
    "矿上": "煤矿 矿山",
    "安全帽": "劳动防护用品",
    "劳保": "劳动防护用品",
    "瓦斯超了": "瓦斯浓度超限",
    "着火": "火灾",
    "爆炸": "爆炸 事故",
    "出事": "事故 生产安全事故",
    "出了事故": "生产安全事故",
    "培训": "安全培训 教育培训",
    "证书": "资格证书 操作资格",
    "特种作业": "特种作业 操作资格证书",
}

_CLAUSE = re.compile(r"[，,。？?！!；;、/（）()\s]+")
MIN_CLAUSE_CHARS = 4
MAX_CLAUSES = 3
_LONGEST_FIRST = sorted(COLLOQUIAL, key=len, reverse=True)


def expansion_terms(question: str) -> str:
    """The formal terms for the everyday words in `question` (longest match first), space-joined."""
    found: list[str] = []
    rest = question
    for word in _LONGEST_FIRST:
        if word in rest:
            found.extend(COLLOQUIAL[word].split())
            rest = rest.replace(word, " ")
    return " ".join(dict.fromkeys(t for t in found if t not in question))


def clauses(question: str) -> list[str]:
    """The question's clauses when it has several substantial ones (a story, then the question);
    empty for a one-clause question. At most MAX_CLAUSES, the longest, in their original order."""
    parts = [p for p in _CLAUSE.split(question) if len(p) >= MIN_CLAUSE_CHARS]
    if len(parts) < 2:
        return []
    keep = sorted(sorted(range(len(parts)), key=lambda i: -len(parts[i]))[:MAX_CLAUSES])
    return [parts[i] for i in keep]
