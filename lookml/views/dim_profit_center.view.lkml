# Profit centres (SAP ProfitCenters); each belongs to one of five cost-accounting dimensions.
# Explores join it once per dimension (profit_center, profit_center_2, ...).
view: dim_profit_center {
  sql_table_name: sap_b1.dim_profit_center ;;

  dimension: center_code { primary_key: yes label: "Profit centre code" sql: ${TABLE}.center_code ;; }
  dimension: center_name { label: "Profit centre" sql: ${TABLE}.center_name ;; }
  dimension: dimension_code { label: "Dimension" type: number sql: ${TABLE}.dimension_code ;; }
  dimension: is_active { type: yesno sql: ${TABLE}.is_active ;; }
  dimension_group: effective_from { type: time timeframes: [date, month, year] datatype: date sql: ${TABLE}.effective_from ;; }
  measure: count { type: count }
}
