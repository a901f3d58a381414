"""The owner's side (issue 15, 优服务 service before penalty): a personal page from every owner notice.

- :mod:`alerts.owner.settings`: the ``[owner]`` section (public URL, link lifetime, upload limits);
- :mod:`alerts.owner.links`: signed, expiring, revocable capability links, one restaurant each;
- :mod:`alerts.owner.uploads`: what an owner may upload (images re-encoded, PDFs kept as attachments);
- :mod:`alerts.owner.submissions`: evidence and statements onto the case of the ladder step, receipts;
- :mod:`alerts.owner.page` (+ ``templates/``, ``static/``): ``GET/POST /o/<token>`` served by
  ``fumewatch api``, zh-CN, mobile first.

docs/owner.md describes it for operators and the bureau.
"""
