# PDT: general-ledger movement per month, account and profit centre (dimension 1).
# Rebuilt when b1_finance_datagroup is triggered, or on demand by LookerBuildPdtOperator.
view: gl_account_monthly {
  derived_table: {
    datagroup_trigger: b1_finance_datagroup
    indexes: ["company", "account_code", "profit_center_code"]
    sql:
      SELECT l.company, date_trunc('month', l.reference_date)::date AS month,
             l.account_code,
             l.costing_code AS profit_center_code,
             SUM(COALESCE(l.debit, 0)) AS debit,
             SUM(COALESCE(l.credit, 0)) AS credit
      FROM sap_b1.fact_journal_entry_line AS l
      GROUP BY 1, 2, 3, 4 ;;
  }

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '|' || ${TABLE}.month || '|' || ${TABLE}.account_code || '|' || COALESCE(${TABLE}.profit_center_code, '') ;; }
  dimension: company { label: "Company" sql: ${TABLE}.company ;; }
  dimension_group: period { type: time timeframes: [month, quarter, year] datatype: date sql: ${TABLE}.month ;; }
  dimension: account_code { sql: ${TABLE}.account_code ;; }
  dimension: profit_center_code { sql: ${TABLE}.profit_center_code ;; }
  measure: debit { type: sum value_format_name: decimal_2 sql: ${TABLE}.debit ;; }
  measure: credit { type: sum value_format_name: decimal_2 sql: ${TABLE}.credit ;; }
  measure: net { type: sum value_format_name: decimal_2 sql: ${TABLE}.debit - ${TABLE}.credit ;; }
}
