#!/usr/bin/env python3
"""A forum board page like the ones flarefeed builds feeds from: a CJK discussion list of
`items` posts (relative links, entities, a summary of HTML per post, a date, an author), with the
head and scripts a real board carries. About 4 KB a post: 500 posts is about 2 MB.
usage: genpage.py ITEMS OUT
"""
import random
import sys

WORDS = ["服务器", "网络", "配置", "教程", "分享", "问题", "求助", "推荐", "测试", "性能", "安全", "更新",
         "部署", "容器", "内核", "带宽", "延迟", "节点", "脚本", "面板", "Rust", "Docker", "IPv6", "VPS"]


def sentence(rng, words):
    return "".join(rng.choice(WORDS) for _ in range(words)) + "。"


def page(items, seed=7):
    rng = random.Random(seed)
    head = ('<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>技术 - 论坛</title>'
            + "".join(f'<link rel="stylesheet" href="/static/s{i}.css">' for i in range(20))
            + "<script>" + "window.__state__ = {};" * 400 + "</script></head><body>"
            + '<header class="nsk-header"><nav>' + "".join(f'<a href="/c/{i}">分类{i}</a>' for i in range(30))
            + '</nav></header><div id="nsk-body"><ul class="post-list">')
    posts = []
    for i in range(items):
        pid = 600000 - i
        title = sentence(rng, 6)[:-1] + (" &amp; 讨论" if i % 3 == 0 else "")
        summary = "".join(f"<p>{sentence(rng, 200)} <a href=\"/post-{pid}-{k}\">第{k}楼</a></p>" for k in range(3))
        minute = i % 60
        posts.append(
            f'<li class="post-list-item" data-pid="{pid}"><div class="post-list-content">'
            f'<div class="post-title"><a href="/post-{pid}-1">{title}</a></div>'
            f'<div class="post-summary">{summary}<img src="/img/{pid}.png" alt=""></div>'
            f'<div class="post-info"><span class="info-item info-author"><a href="/space/{i}">用户{i}</a></span>'
            f'<span class="info-item"><time datetime="2026-12-03T10:{minute:02d}:00.000Z">{i} 分钟前</time></span>'
            '</div></div></li>')
    return head + "\n".join(posts) + '</ul></div><footer>&copy; 2026</footer></body></html>\n'


if __name__ == "__main__":
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        out.write(page(int(sys.argv[1])))
