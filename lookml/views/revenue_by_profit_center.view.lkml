# PDT: invoiced revenue and purchased cost per month and profit centre (dimension 1),
# cancelled documents left out.
view: revenue_by_profit_center {
  derived_table: {
    datagroup_trigger: b1_warehouse_datagroup
    indexes: ["company", "profit_center_code"]
    sql:
      SELECT l.company, date_trunc('month', l.doc_date)::date AS month, l.costing_code AS profit_center_code,
             'sales' AS source, SUM(l.line_total) AS revenue, 0 AS cost
      FROM sap_b1.fact_sales_invoice_line AS l
      JOIN sap_b1.fact_sales_invoice AS h ON h.company = l.company AND h.doc_entry = l.doc_entry AND NOT h.is_cancelled
      GROUP BY 1, 2, 3
      UNION ALL
      SELECT l.company, date_trunc('month', l.doc_date)::date, l.costing_code, 'purchases', 0, SUM(l.line_total)
      FROM sap_b1.fact_purchase_invoice_line AS l
      JOIN sap_b1.fact_purchase_invoice AS h ON h.company = l.company AND h.doc_entry = l.doc_entry AND NOT h.is_cancelled
      GROUP BY 1, 2, 3 ;;
  }

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '|' || ${TABLE}.month || '|' || COALESCE(${TABLE}.profit_center_code, '') || '|' || ${TABLE}.source ;; }
  dimension: company { label: "Company" sql: ${TABLE}.company ;; }
  dimension_group: period { type: time timeframes: [month, quarter, year] datatype: date sql: ${TABLE}.month ;; }
  dimension: profit_center_code { label: "Profit centre code" sql: ${TABLE}.profit_center_code ;; }
  measure: revenue { type: sum value_format_name: decimal_2 sql: ${TABLE}.revenue ;; }
  measure: cost { type: sum value_format_name: decimal_2 sql: ${TABLE}.cost ;; }
  measure: margin { type: number value_format_name: decimal_2 sql: ${revenue} - ${cost} ;; }
}
